"""How different are the contrast clips? Mean mel distance between clips of the same seed and
different prompts, against clips of the same prompt and different seeds (run contrast.py with
--out runs/adherence/contrast first).

    python recipes/bundled/contrast_distance.py
"""
import glob, itertools, torch, statistics as S
from wavecraft.audio import audio_read
from wavecraft.metrics.audio import mel_distance
groups = {}
for f in sorted(glob.glob('runs/adherence/contrast/*.wav')):
    tag, seed = f.rsplit('/',1)[1][:-4].rsplit('_seed', 1)
    groups.setdefault(tag, {})[int(seed)] = audio_read(f)[0]
sets = {"tempo": [t for t in groups if t.startswith('tempo')], "instrument": [t for t in groups if not t.startswith('tempo')]}
for name, tags in sets.items():
    same_seed = [float(mel_distance(groups[a][s][None], groups[b][s][None], 16000)) for a, b in itertools.combinations(tags, 2) for s in groups[a]]
    same_prompt = [float(mel_distance(groups[t][s1][None], groups[t][s2][None], 16000)) for t in tags for s1, s2 in itertools.combinations(sorted(groups[t]), 2)]
    print(name, "mel distance, same seed different prompt: %.3f; same prompt different seed: %.3f" % (S.fmean(same_seed), S.fmean(same_prompt)))
