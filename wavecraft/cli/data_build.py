"""`wavecraft data build-music` and `wavecraft data build-sounds`: parse arguments, call the builders."""
from __future__ import annotations

import argparse


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_build_commands(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "build-music", help="render the offline music training set (music21 corpus + generated grooves)",
        description="Render symbolic music (the music21 corpus and generated arrangements with drums) through GM "
                    "soundfonts into OUT_DIR/{train,valid,eval}/data.jsonl with sidecar captions. Needs "
                    "`pip install music21` and `pip install --no-deps tinysoundfont` plus the Debian soundfonts "
                    "(bash recipes/install_data_sources.sh).")
    m.add_argument("out_dir", help="folder to build in (created; an existing build needs --force)")
    m.add_argument("--seed", type=int, default=0, help="seed of the whole plan (default 0)")
    m.add_argument("--hours", type=float, default=1.0, help="approximate hours of audio to plan (default 1)")
    m.add_argument("--limit", type=int, default=None, help="render at most N items (whichever of --hours/--limit is smaller)")
    m.add_argument("--sample-rate", type=int, default=32000, help="output rate in Hz, mono (default 32000)")
    m.add_argument("--clip-seconds", type=float, default=30.0, help="longest clip; longer renders are split (default 30)")
    m.add_argument("--generated-fraction", type=float, default=0.5, help="share of generated arrangements (default 0.5)")
    m.add_argument("--soundfonts", type=_csv, default=None,
                   help="comma-separated soundfont sources (default fluidr3_gm,musescore_general,fluidr3_mono; "
                        "timgm6mb is GPL and opt-in)")
    m.add_argument("--collections", type=_csv, default=(), help="music21 collections to use, e.g. bach,oneills1850 (default all)")
    m.add_argument("--styles", type=_csv, default=(), help="generated styles to use, e.g. funk,jazz (default all)")
    m.add_argument("--commercial-only", action="store_true", help="leave out corpus collections restricted to non-commercial use")
    m.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    m.add_argument("--force", action="store_true", help="delete a previous build in OUT_DIR first")
    m.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    m.set_defaults(func=_build_music)

    s = sub.add_parser(
        "build-sounds", help="build the offline sound-effects training set (game packages + synthesis + speech)",
        description="Collect labelled clips from Debian game/sample packages, synthesise extra classes, speak with "
                    "espeak-ng and mix scenes into OUT_DIR/{train,valid,eval}/data.jsonl with sidecar captions "
                    "(bash recipes/install_data_sources.sh installs the packages).")
    s.add_argument("out_dir", help="folder to build in (created; an existing build needs --force)")
    s.add_argument("--seed", type=int, default=0, help="seed of the whole plan (default 0)")
    s.add_argument("--limit", type=int, default=None, help="make at most N source clips (a random, seeded subset)")
    s.add_argument("--sample-rate", type=int, default=32000, help="output rate in Hz, mono (default 32000)")
    s.add_argument("--clip-seconds", type=float, default=10.0, help="longest clip; longer ones are split (default 10)")
    s.add_argument("--sources", type=_csv, default=None,
                   help="comma-separated packages to read (default 0ad,ufoai,minetest,sonic_pi; '' for none)")
    s.add_argument("--synth-per-class", type=int, default=30, help="synthesised clips per synthesiser (default 30)")
    s.add_argument("--speech", type=int, default=200, help="espeak-ng utterances (default 200)")
    s.add_argument("--mixes", type=int, default=400, help="foreground + background scenes (default 400)")
    s.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    s.add_argument("--force", action="store_true", help="delete a previous build in OUT_DIR first")
    s.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    s.set_defaults(func=_build_sounds)


def _report(summary: dict) -> None:
    items = ", ".join(f"{k} {v}" for k, v in summary["items"].items())
    hours = ", ".join(f"{k} {v * 60:.1f} min" for k, v in summary["hours"].items())
    print(f"built {summary['kind']}: {items} items ({hours}) in {summary['wall_seconds']:.0f} s; "
          f"{len(summary['failures'])} skipped (see build_info.json)")


def _build_music(args: argparse.Namespace) -> int:
    from wavecraft.data.build_music import MusicBuildConfig, build_music
    from wavecraft.errors import ConfigError

    fields = dict(out_dir=args.out_dir, seed=args.seed, hours=args.hours, limit=args.limit,
                  sample_rate=args.sample_rate, clip_seconds=args.clip_seconds,
                  generated_fraction=args.generated_fraction, collections=args.collections, styles=args.styles,
                  commercial_only=args.commercial_only, workers=args.workers, force=args.force,
                  progress=not args.no_progress)
    if args.soundfonts is not None:
        fields["soundfonts"] = args.soundfonts
    try:
        cfg = MusicBuildConfig(**fields)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _report(build_music(cfg))
    return 0


def _build_sounds(args: argparse.Namespace) -> int:
    from wavecraft.data.build_sounds import SoundBuildConfig, build_sounds
    from wavecraft.errors import ConfigError

    fields = dict(out_dir=args.out_dir, seed=args.seed, limit=args.limit, sample_rate=args.sample_rate,
                  clip_seconds=args.clip_seconds, synth_per_class=args.synth_per_class, speech=args.speech,
                  mixes=args.mixes, workers=args.workers, force=args.force, progress=not args.no_progress)
    if args.sources is not None:
        fields["sources"] = args.sources
    try:
        cfg = SoundBuildConfig(**fields)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    _report(build_sounds(cfg))
    return 0

