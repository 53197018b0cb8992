"""The seed's inference command: python main.py [options]  (= python -m microgpt.generate)

    python main.py --scenario names -i "George"
    python main.py --model models/names/model.json -i "A" --top-k 40 --repetition-penalty 1.2

Training is `python train.py ...`, as in the seed. The words of the project's first shim
still work: `python main.py train ...` trains, `python main.py generate ...` samples.
"""
import sys

if __name__ == "__main__":
    words = {"train", "generate"}
    command = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in words else "generate"
    args = sys.argv[2:] if len(sys.argv) > 1 and sys.argv[1] in words else sys.argv[1:]
    if command == "train":
        from microgpt.train import cli
    else:
        from microgpt.generate import cli
    sys.argv = [f"main.py {command}"] + args
    cli()
