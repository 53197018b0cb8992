"""Shim kept for the original command: python main.py [train|generate] [options]

`python main.py --scenario names` trains; `python main.py generate -i an` samples.
"""
import sys

if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("train", "generate") else "train"
    args = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] == command else sys.argv[1:]
    if command == "generate":
        from microgpt.generate import cli
    else:
        from microgpt.train import cli
    sys.argv = [f"main.py {command}"] + args
    cli()
