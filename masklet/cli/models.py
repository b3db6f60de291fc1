"""``masklet models`` (presets, sizes, cache state) and ``masklet download`` (fill the cache)."""

from __future__ import annotations

from .common import CLIError, checkpoint_message


def add_models_parsers(sub) -> None:
    sub.add_parser("models", help="list presets, sizes, cache status and download URLs")
    dl = sub.add_parser("download", help="download official checkpoints into the cache")
    dl.add_argument("names", nargs="+", help="preset names or aliases")


def cmd_models(args) -> int:
    from ..checkpoints import list_models

    rows = list_models()
    print(f"{'name':24} {'alias':18} {'params':>8} {'file':>8} {'cached':>8}  url")
    for r in rows:
        cached = f"{r['cached_size'] / 2**20:.0f} MiB" if r.get("cached") else "no"
        alias = ",".join(r.get("aliases", []))
        size = f"~{r['approx_mb']} MB"
        print(f"{r['name']:24} {alias:18} {r['params'] / 1e6:7.1f}M {size:>8} {cached:>8}  {r['url']}")
    return 0


def cmd_download(args) -> int:
    from ..checkpoints import CheckpointUnavailable, download_checkpoint

    for name in args.names:
        try:
            path = download_checkpoint(name)
        except CheckpointUnavailable as exc:
            elsewhere = "give a file kept elsewhere to a command as --checkpoint PATH"
            raise CLIError(checkpoint_message(exc, elsewhere)) from None
        print(f"{name}: {path}")
    return 0
