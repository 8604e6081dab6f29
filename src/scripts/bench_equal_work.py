"""Time our DiT's framelet against the peer's code and a plain causal DiT at the same shapes (table + JSON).

uv run python -m src.scripts.bench_equal_work
uv run python -m src.scripts.bench_equal_work --rounds 5 --threads 1
uv run python -m src.scripts.bench_equal_work --peer_dir ../peer/spokester1 --systems '[reference, ours, ours_ncnn]'
"""

from __future__ import annotations

from src.bench.config import EqualWorkConfig
from src.common.config import parse_config
from src.common.errors import script_main


@script_main
def main(argv=None) -> None:
    config = parse_config(EqualWorkConfig, argv, prog="bench_equal_work", description=__doc__.splitlines()[0])
    config.check()
    from src.bench.equal_work import run_and_report  # torch and the models load after parsing

    run_and_report(config)


if __name__ == "__main__":
    main()
