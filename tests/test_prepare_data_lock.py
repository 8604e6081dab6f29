"""prepare_data: one run per dataset folder (the lock train_net uses), --videos with --defaults
prepares both, each skipped video is one line; a refused command leaves no stale lock behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from src.common.folder_lock import LOCK_FILE
from src.data import prepare, sources

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--resolution", "16x16", "--fps", "4", "--end_s", "1", "--shard_frames", "4"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != LOCK_FILE
    }


def _hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds ``folder``'s lock until killed."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; sys.path.insert(0, sys.argv[1]); "
         "from src.common.folder_lock import lock_folder; lock = lock_folder(sys.argv[2], in_use='x', hint='y'); "
         "print('held', flush=True); time.sleep(60)", str(ROOT), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_prepare_data_on_a_folder_in_use_is_one_line_and_changes_nothing(tmp_path, bikes, capsys):
    from src.scripts.prepare_data import main

    out = tmp_path / "prepared"
    main(["--videos", str(bikes), "--out", str(out), *TINY])
    before = _snapshot(out)
    assert "manifest.json" in before
    holder = _hold_lock(out)  # as if a first prepare_data were still writing it
    try:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(["--videos", str(bikes), "--out", str(out), *TINY[:-2], "--shard_frames", "2"])
        err = capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    assert exit_info.value.code == 2
    assert err.strip().splitlines() == [
        f"error: the dataset folder {out} is being prepared by another prepare_data "
        f"(pid {holder.pid} on {os.uname().nodename}). Wait for it to finish (re-running afterwards "
        "resumes it), or choose another --out."
    ]
    assert _snapshot(out) == before  # byte for byte: nothing written beside the other run


def test_prepare_data_holds_the_lock_while_it_writes_and_releases_it(tmp_path, bikes, monkeypatch):
    out = tmp_path / "prepared"
    holders = []
    original = prepare.prepare_video

    def watching(path, folder, *args, **kwargs):
        holders.append(json.loads((folder / LOCK_FILE).read_text())["pid"])
        return original(path, folder, *args, **kwargs)

    monkeypatch.setattr(prepare, "prepare_video", watching)
    config = prepare.PrepareConfig(videos=[str(bikes)], out=str(out), resolution="16x16", fps=4.0, end_s=1.0)
    prepare.prepare_dataset(config)
    assert holders == [os.getpid()]
    assert (out / LOCK_FILE).read_text() == ""  # released: the next run takes it without a word


def test_videos_with_defaults_prepares_both(tmp_path, bikes, monkeypatch, capsys):
    from src.scripts.prepare_data import main

    mine = tmp_path / "my_ride.mp4"
    shutil.copy(bikes, mine)
    monkeypatch.setattr(sources, "embedded_street_videos", lambda: [bikes])
    out = tmp_path / "prepared"
    main(["--videos", str(mine), "--defaults", "true", "--out", str(out), *TINY])
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(Path(v["source"]).name for v in manifest["videos"]) == ["bikes.mp4", "my_ride.mp4"]
    assert capsys.readouterr().out.startswith("prepared 2 video(s)")


def test_each_skipped_video_is_one_line(tmp_path, bikes, capsys):
    from src.scripts.prepare_data import main

    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bikes.read_bytes()[:150_000])
    broken_bytes = broken.read_bytes()
    out = tmp_path / "prepared"
    main(["--videos", str(bikes), str(broken), "--out", str(out), *TINY])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if "broken.mp4" in line]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {broken}: ")
    assert captured.out.strip().endswith(f"-> {out}; skipped 1 (see above)")
    assert broken.read_bytes() == broken_bytes


def test_a_refused_command_leaves_no_stale_lock_and_a_killed_one_does(tmp_path, capsys):
    from src.train.run_folder import lock_run_folder

    run = tmp_path / "run"
    refused = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
         "from src.common.errors import UserError, script_main; from src.train.run_folder import lock_run_folder\n"
         "@script_main\ndef main():\n    lock = lock_run_folder(sys.argv[2])\n"
         "    raise UserError('a different model section')\nmain()", str(ROOT), str(run)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2, refused.stderr
    assert (run / LOCK_FILE).read_text() == ""
    lock_run_folder(run).close()
    assert "stale" not in capsys.readouterr().out
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal, sys; sys.path.insert(0, sys.argv[1]); "
         "from src.train.run_folder import lock_run_folder; lock = lock_run_folder(sys.argv[2]); "
         "os.kill(os.getpid(), signal.SIGKILL)", str(ROOT), str(run)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert killed.returncode == -9
    dead_pid = json.loads((run / LOCK_FILE).read_text())["pid"]
    lock_run_folder(run).close()
    assert f"taking over the stale lock of {run} (pid {dead_pid} on " in capsys.readouterr().out


@pytest.mark.multiprocess
def test_both_processes_of_a_launch_refuse_a_folder_in_use_and_none_waits(tmp_path, bikes):
    """Only the main process takes the lock; the other learns of the refusal from it (no hang)."""
    import socket

    out = tmp_path / "prepared"
    holder = _hold_lock(out)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(port)]  # fmt: skip
    command = [*launch, "-m", "src.scripts.prepare_data", "--videos", str(bikes), "--out", str(out), *TINY]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode != 0
    refusals = [
        line for line in done.stderr.splitlines() if "is being prepared by another prepare_data" in line
    ]
    assert len(refusals) == 2, done.stderr[-3000:]  # one line from each process
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE]  # nothing written


def test_a_folder_left_locked_by_a_killed_prepare_data_is_prepared_by_the_next(tmp_path, bikes, capsys):
    from src.scripts.prepare_data import main

    out = tmp_path / "prepared"
    out.mkdir()  # killed after taking the lock, before writing anything else
    (out / LOCK_FILE).write_text(json.dumps({"pid": 2**22 + 7, "host": os.uname().nodename}) + "\n")
    main(["--videos", str(bikes), "--out", str(out), *TINY])
    captured = capsys.readouterr()
    assert f"taking over the stale lock of {out} (pid {2**22 + 7} on " in captured.out
    assert (out / "manifest.json").is_file() and (out / LOCK_FILE).read_text() == ""
