"""Shim kept for the original command: python train.py --scenario names  (= python -m microgpt.train)"""
from microgpt.train import cli

if __name__ == "__main__":
    cli(prog="python train.py")
