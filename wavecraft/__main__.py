import sys

from wavecraft.cli import main

sys.exit(main())
