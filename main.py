"""The seed's inference command: python main.py [options]  (= python -m microgpt.generate)

    python main.py --scenario names -i "George"
    python main.py --model models/names/model.json -i "A" --top-k 40 --repetition-penalty 1.2

Training is `python train.py ...`, as in the seed. The words of the project's first shim
still work: `python main.py train ...` trains, `python main.py generate ...` samples.
"""
import sys

if __name__ == "__main__":
    word = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in ("train", "generate") else None
    args = sys.argv[2:] if word else sys.argv[1:]
    if word == "train":
        from microgpt.train import cli
    else:
        from microgpt.generate import cli
    sys.argv = [sys.argv[0]] + args
    cli(prog=f"python main.py {word}" if word else "python main.py")
