"""Run the `pinelab` command as `python -m pinelab`."""

from pinelab.cli import app

if __name__ == "__main__":
    app(prog_name="pinelab")
