"""Download a scenario's data file into data/<scenario>/ (the cache microgpt.train reads).

    python scripts/download_data.py names        # or alice; --force to fetch again
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from microgpt.cli import run_main  # noqa: E402
from microgpt.config import load_scenario  # noqa: E402
from microgpt.data import CACHE_DIR, download, text_to_docs  # noqa: E402
from microgpt.errors import DataError  # noqa: E402


def fetch(scenario: str, force: bool = False, dest: str | None = None) -> str:
    cfg = load_scenario(scenario)
    dest = dest or os.path.join(CACHE_DIR, cfg.name, cfg.data.file)
    if os.path.exists(dest) and not force:
        print(f"{dest} already exists (--force to download again)")
        return dest
    problems = []
    for url in cfg.data.urls:
        try:
            raw = download(url, dest, cfg.data.sha256)
        except (OSError, ValueError) as e:  # URLError is an OSError
            problems.append(f"{url}: {getattr(e, 'reason', e)}")
            continue
        docs = text_to_docs(raw.decode("utf-8"), cfg.data)  # checks the Gutenberg markers too
        print(f"saved {dest}: {len(raw):,} bytes, {len(docs):,} documents")
        return dest
    raise DataError(f"could not download {cfg.data.file}: {'; '.join(problems)}. Place the file at {dest} by hand "
                    "or set MICROGPT_DATA_DIR to a folder holding it")


def main(argv=None, scenario=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    if scenario is None:
        p.add_argument("scenario", help="names, alice or alice_v2")
    p.add_argument("--force", action="store_true", help="download even if the file is already there")
    p.add_argument("--dest", help="where to save (default: data/<scenario>/<file>)")
    args = p.parse_args(argv)
    fetch(scenario or args.scenario, args.force, args.dest)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
