"""The play benchmark's table (``src/bench/bench_play.py``): one line per row, milliseconds per
stage and FPS, the under-load columns with ``background_load``, and the soak's memory line."""

from __future__ import annotations


def format_table(result: dict) -> str:
    """The rows as a table with what each column means, and the soak's line where there is one."""
    loaded = bool(result["config"].get("background_load"))
    header = (
        f"{'renderer':>8} {'model':>17} {'backend':>11} {'res':>9} {'gbuf res':>9} {'steps':>5} {'world':>7} {'gbuffer':>8} "
        f"{'encode':>7} {'passes':>6} {'model/step':>10} {'model/fl':>9} {'model/fr':>9} {'display':>8} "
        f"{'wait':>6} {'other':>7} {'frame':>7} {'FPS':>6} {'latency':>8}"
    )
    if loaded:
        header += f" {'FPS load':>8} {'x idle':>6} {'other load':>10}"
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        line = (
            f"{row['renderer']:>8} {row['model']:>17} {row['backend']:>11} {row['resolution']:>9} "
            f"{row.get('gbuffer_resolution', row['resolution']):>9} {row['steps']:>5} "
            f"{row['world_ms']:>7.2f} {row['gbuffer_ms']:>8.2f} {row['encode_ms']:>7.2f} {row['passes_per_framelet']:>6} "
            f"{row['model_ms_per_step']:>10.2f} {row['model_ms_per_framelet']:>9.2f} {row['model_ms_per_frame']:>9.2f} "
            f"{row['display_ms']:>8.2f} {row.get('wait_ms', 0.0):>6.2f} {row['other_ms']:>7.2f} {row['frame_ms']:>7.2f} "
            f"{row['fps']:>6.1f} {row.get('latency_ms', 0.0):>8.1f}"
        )
        if loaded:
            line += f" {row['fps_under_load']:>8.1f} {row['load_fps_ratio']:>6.2f} {row['other_ms_under_load']:>10.2f}"
        lines.append(line)
    lines.append(
        "(milliseconds per frame; gbuf res = the G-buffers' size; model/step = one network evaluation, model/fl = one "
        "framelet (2 frames for the DiT), model/fr = the model's time per frame, passes = network evaluations per "
        "framelet; "
        + (
            "pipelined: the model's worker renders frame N beside the loop's world, gbuffer and encode of frame N+1 and "
            "display of frame N-1, and world + gbuffer + encode + display + wait (for the worker) + other = frame"
            if result["config"].get("pipeline")
            else "in sequence: world + gbuffer + encode + model/fr + display + other = frame"
        )
        + "; other = the loop's own time and waits for a core; latency = from a frame's input (its world step) to "
        "the display of the neural frame made from it"
        + (
            f"; FPS load = the same row beside {result['config']['background_load']} busy process(es), x idle its ratio"
            if loaded
            else ""
        )
        + f"; runtime threads {result['machine'].get('runtime_threads')})"
    )
    if "soak" in result:
        s = result["soak"]
        lines.append(
            f"soak: {s['game_minutes']:g} game minutes ({s['frames']} frames, {s['wall_s']:.0f} s): RSS "
            f"{s['rss_start_mb']:.0f} -> {s['rss_end_mb']:.0f} MB (max {s['rss_max_mb']:.0f}), threads "
            f"{s['threads_start']} -> {s['threads_end']}, open files {s['open_files_start']} -> {s['open_files_end']}"
        )
    return "\n".join(lines)
