"""The benchmarks' settings, in a module that imports no torch, so their scripts' ``--help``
answers at once (the benchmarks themselves load torch when they run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from src.common.errors import UserError
from src.conditions.config import ExtractConfig
from src.data.prepared import SPLITS
from src.game.config import DEFAULT_LEVEL, CameraConfig
from src.runtime.defaults import DEFAULT_CHECKPOINT, DEFAULT_RENDERER

SYSTEMS = (
    "reference",
    "ours",
    "ours_stem_smooth",
    "ours_smooth_half",
    "ours_context_pass",
    "ours_ncnn",
    "ours_light",
    "ours_light_ncnn",
    "peer",
)


@dataclasses.dataclass
class EqualWorkConfig:
    """``bench_equal_work``: ms per framelet of our DiT, a plain causal DiT and (with ``peer_dir``)
    the peer's own code, at the same shapes."""

    CHOICES = {"systems": SYSTEMS}  # checked when parsed (src/common/ranges.py)

    resolution: int = 224
    """square frame size in pixels"""
    hidden_dim: int = 256
    """token width of both models"""
    num_blocks: int = 4
    """transformer blocks of both models"""
    num_heads: int = 4
    """attention heads of both models"""
    patch_size: int = 16
    """pixels per token side"""
    frames_per_framelet: int = 2
    """frames generated together as one framelet"""
    condition_channels: int = 9
    """condition planes per frame (the encoded G-buffer)"""
    window_framelets: int = 3
    """framelets a framelet attends to, itself included"""
    steps: int = 2
    """Euler steps (network passes) per framelet"""
    ours_steps: int = 0
    """our passes per framelet (0: steps, the same work; 1: one pass whose keys become the
    context, as the distilled model plays); the reference always runs steps"""
    systems: list[str] = dataclasses.field(default_factory=lambda: list(SYSTEMS[:3]))
    """which to time: reference, ours (no stem, patch decoder), ours_stem_smooth (conv stem, smooth
    decoder), ours_smooth_half (no stem, smooth decoder at half resolution: decoder_scale 2),
    ours_context_pass (ours with a context pass of its own: steps + 1 passes), ours_ncnn (ours
    exported to ncnn and run as play runs it, on the CPU), ours_light / ours_light_ncnn (ours with
    the lighter block: a shared adaLN layer with per-block offsets, a rank-64 condition
    embedding), peer (the peer's own code from
    peer_dir; added first whenever peer_dir is given)"""
    peer_dir: str | None = None
    """an unpacked snapshot of the peer's repository (Spokester1: its src/net/helpers.py holds
    generate); its own generation code is imported from there and timed beside ours"""
    peer_commit: str = ""
    """the snapshot's commit, reported in the peer's row (empty: git rev-parse HEAD when peer_dir
    is a git work tree of its own, else unknown)"""
    rounds: int = 3
    """interleaved rounds; each times every system once"""
    framelets_per_round: int = 8
    """framelets timed per system and round (the round's number is their median)"""
    warmup_framelets: int = 3
    """untimed framelets per system first (fills the cache; compiles with --compile)"""
    threads: int = 0
    """torch threads (0: torch's default)"""
    compile: bool = False
    """torch.compile both (ours: compile_inference over its fixed-size cache); warm-up covers compilation"""
    seed: int = 0
    """seed of the random weights and inputs"""
    json_out: str = "runs/bench_equal_work.json"
    """where the numbers go as JSON"""

    def check(self) -> None:
        """The refusals the arguments alone decide (the script asks before torch loads); with a
        peer_dir, the peer becomes the first system."""
        if self.peer_dir is None:
            if "peer" in self.systems:
                raise UserError(
                    "the peer system needs the peer's code",
                    "Pass --peer_dir with an unpacked snapshot of its repository.",
                )
            return
        if not Path(self.peer_dir).is_dir():
            raise UserError(
                f"--peer_dir {self.peer_dir} is not a folder",
                f"Unpack the peer's snapshot there: mkdir -p {self.peer_dir} && "
                f"git --git-dir=<its git folder> archive HEAD | tar -x -C {self.peer_dir}",
            )
        if "peer" not in self.systems:
            self.systems = ["peer", *self.systems]


@dataclasses.dataclass
class BenchDataConfig:
    """``bench_data``: loader throughput per worker count, and the model's FLOPs per clip."""

    dataset: str = "data/prepared/lowres_224"
    """a prepared dataset (prepare_data), e.g. at 224x224 and 24 fps"""
    presets: list[str] = dataclasses.field(
        default_factory=lambda: ["conf/base.yaml", "conf/pretrain_lowres.yaml"]
    )
    """the training presets whose data settings (clip length, crop, augmentations) are measured"""
    workers: list[int] = dataclasses.field(default_factory=lambda: [0, 1, 2])
    """DataLoader worker counts to measure"""
    batches: int = 20
    """batches timed per worker count (after the warm-up)"""
    finish_batches: int = 4
    """batches timed per worker count when they are also encoded and augmented (finish_device)"""
    finish_device: str = "cpu"
    """where the encoding and augmentations are timed: cpu, or cuda (the GPU's share in training)"""
    warmup_batches: int = 3
    """batches read before the clock starts (worker start-up, file caches)"""
    batch_size: int | None = None
    """clips per batch (None: the preset's data.batch_size)"""
    count_flops: bool = True
    """also count the preset model's training FLOPs per clip at the dataset's frame size"""
    out: str = "runs/bench_data.json"
    """the JSON report to write"""


@dataclasses.dataclass
class BenchRealismFloorConfig:
    """``bench_realism_floor``: KID/SWD of real footage of other places against a reference clip."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "fps": "(0, inf)",
        "frames_per_set": "[2, inf)",
        "clip_frames": "[2, inf)",
    }
    CHOICES = {"split": SPLITS}  # checked when parsed (src/common/ranges.py)

    reference: str = "data/real_videos"
    """the real frames a game ride is scored against: evaluate's --data (prepared dataset, video or folder;
    the default is where prepare_data looks for your own videos)"""
    others: list[str] = dataclasses.field(default_factory=list)
    """real footage of other places: prepared datasets, videos or folders of videos, one set each"""
    per_video: bool = False
    """one set per video of each --others entry instead of one per entry"""
    resolution: str = "224x224"
    """WIDTHxHEIGHT videos are prepared at (the renderer's play size; prepared datasets keep theirs)"""
    fps: float = 10.0
    """frame rate videos are prepared at"""
    split: str = "all"
    """which frames of each source: all, train or val"""
    clip_frames: int = 16
    """the reference is read in clips of this many frames, as evaluate reads it"""
    frames_per_set: int = 64
    """frames of each other set, spread evenly over it (evaluate's game ride has 64)"""
    cache_dir: str | None = None
    """where prepared videos are kept (default: $VELODREAM_CACHE or ~/.cache/velodream)"""
    json_out: str = "runs/bench_realism_floor.json"
    """where the results go (JSON)"""

    def check(self) -> None:
        """The refusal the arguments alone decide (the script asks before torch loads)."""
        if not self.others:
            raise UserError(
                "bench_realism_floor needs real footage of other places to compare",
                "Pass --others with prepared datasets, video files or folders of videos.",
            )


@dataclasses.dataclass
class EvalExtractorsConfig:
    """``eval_extractors``: where the ground truth comes from and where results go."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "game_frames": "[2, inf)",
        "game_seeds": "[0, inf)",
        "game_fps": "(0, inf)",
        "aloe_width": "[8, inf)",
        "lidar_frames": "[2, inf)",
    }

    out: str = "runs/eval_extractors/extractors.json"
    """the JSON file for the results (recorded game rides go beside it, in game_clips/)"""
    game_clip: str | None = None
    """an existing G-buffer clip folder (None: record autopilot rides, one per seed)"""
    game_frames: int = 48
    """frames per recorded game ride"""
    game_resolution: str = "160x120"
    """WIDTHxHEIGHT of the recorded game rides"""
    game_seeds: list[int] = dataclasses.field(default_factory=lambda: [0, 1])
    """one recorded game ride per seed"""
    game_fps: float = 10.0
    """frame rate of the recorded rides (the prepared data's, so flow magnitudes match training)"""
    aloe_width: int = 320
    """width in pixels the aloe stereo image is resized to"""
    skip_game: bool = False
    """measure on aloe only (no game rides)"""
    lidar_videos: list[str] = dataclasses.field(default_factory=list)
    """videos with a depth sidecar (``<video>.depth.npz``, LiDAR or stereo) whose densified depth
    scores the depth extractor, e.g. the PandaSet clips of ../shared/data/city_videos"""
    lidar_resolution: str = "320x192"
    """WIDTHxHEIGHT those videos are decoded at"""
    lidar_frames: int = 40
    """frames of each of those videos, from its start, at game_fps"""
    extract: ExtractConfig = dataclasses.field(default_factory=ExtractConfig)
    """the extractors under test"""


DEFAULT_TRAIN_CONF = ["conf/base.yaml", "conf/cpu_tiny.yaml"]


@dataclasses.dataclass
class GeneralisationConfig:
    """``bench_generalisation``: leave one clip out, train on the rest, evaluate on it."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "minutes": "(0, inf)",
        "max_steps": "[1, inf)",
        "probe_steps": "[1, inf)",
        "regression_max_steps": "[1, inf)",
        "fps": "(0, inf)",
        "clip_frames": "[1, inf)",
        "max_clips": "[1, inf)",
        "game_frames": "[0, inf)",
        "steps": "[1, inf)",
        "seed": "[0, inf)",
        "num_threads": "[1, inf)",
    }

    videos: list[str] = dataclasses.field(default_factory=list)
    """the clips (files or folders); default: bikes.mp4, vtest.avi and the videos in data/real_videos"""
    only: str | None = None
    """run only the fold that leaves out this clip (its file name, stem, or a unique part of it)"""
    train_conf: list[str] = dataclasses.field(default_factory=lambda: list(DEFAULT_TRAIN_CONF))
    """the DiT's training presets, layered in order (a YAML file of overrides may come last)"""
    minutes: float = 30.0
    """training budget per model and fold, in minutes (ignored with max_steps)"""
    max_steps: int | None = None
    """train the DiT this many steps instead of a time budget (the regression gets the DiT's time)"""
    probe_steps: int = 20
    """steps timed to turn minutes into a step count"""
    regression_max_steps: int | None = None
    """also stop the regression baseline after this many steps (for quick checks)"""
    regression: bool = True
    """train and score the regression baseline (false, to try a DiT lever quickly: the fold keeps
    the regression numbers an earlier run wrote into the same --out, if any)"""
    regression_model: dict = dataclasses.field(default_factory=dict)
    """RegressionNet arguments (e.g. {hidden_channels: 32}); default: its own"""
    resolution: str = "96x96"
    """WIDTHxHEIGHT every clip is prepared at (the bundled package's)"""
    fps: float = 10.0
    """frames per second every clip is resampled to"""
    clip_frames: int = 16
    """frames per evaluated real clip"""
    max_clips: int = 8
    """at most this many evaluated clips of the left-out video (as many as fit without overlap)"""
    game_frames: int = 64
    """frames of the evaluated game ride (0: none)"""
    steps: int | None = None
    """denoising steps of the DiT at evaluation (default: its package's)"""
    seed: int = 0
    """the seed of every training run, evaluation rollout and game ride"""
    num_threads: int | None = None
    """torch CPU threads for training and evaluation (default: torch's own choice)"""
    feature_metrics: bool = False
    """KID on Inception features and ST-LPIPS in each evaluation (about 0.5 s per frame on a CPU core)"""
    out: str = "runs/generalisation"
    """where the data, models, evaluations and tables go"""


@dataclasses.dataclass
class BenchmarkConfig:
    """``benchmark``: time a renderer package inside the game loop, per resolution, backend and steps."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "steps": "[1, inf)",
        "frames": "[1, inf)",
        "warmup_frames": "[0, inf)",
        "soak_game_minutes": "[0, inf)",
        "soak_fps": "[1, inf)",
        "seed": "[0, inf)",
        "threads": "[1, inf)",
        "background_load": "[0, inf)",
    }
    CHOICES = {"gbuffer_size": ("renderer", "frame")}  # checked when parsed (src/common/ranges.py)

    checkpoint: str = DEFAULT_CHECKPOINT
    """the renderer package to time: a directory, hf://owner/repo[@rev] or https://...#sha256=..."""
    renderers: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_RENDERER])
    """which renderers of a bundle to time (names from its renderers.json; default: its default)"""
    resolutions: list[str] = dataclasses.field(default_factory=lambda: ["model", "224x224"])
    """'model' is the package's play resolution (a bundle's) or its own; others are WIDTHxHEIGHT"""
    steps: list[int] = dataclasses.field(default_factory=lambda: [1, 2])
    """denoising steps per framelet to time, one row each"""
    backends: list[str] = dataclasses.field(default_factory=lambda: ["torch", "ncnn"])
    """inference backends to time: torch, ncnn, onnxruntime"""
    device: str = "cpu"
    """cpu, cuda (torch, onnxruntime-gpu) / vulkan (ncnn), or auto"""
    threads: int | None = None
    """CPU threads of the model's runtime (torch, ncnn or onnxruntime; default: one fewer than the
    cores, at least one, so the game's own loop keeps a core)"""
    background_load: int = 0
    """also time every row beside this many busy processes (one spinning core each)"""
    frames: int = 60
    """timed frames per setting"""
    warmup_frames: int = 8
    """untimed frames before the timed ones, per setting"""
    display: bool = True
    """include the window's scaling and blit (SDL dummy driver when headless)"""
    pipeline: bool = True
    """run the model one frame behind the game in a worker thread (``PipelinedRenderer``: frame
    N+1's world and G-buffer overlap frame N's model), as against every stage in sequence"""
    gbuffer_size: str = "renderer"
    """the G-buffers' size for a neural row: renderer (the size it makes full use of: 112x112 for
    a student upscaling to 224x224, unless it adds the full-size albedo's detail) or frame (the
    output size)"""
    soak_game_minutes: float = 0.0
    """also ride this many minutes of game time with the first neural setting and report memory"""
    soak_fps: int = 30
    """game steps per second of the soak ride"""
    seed: int = 0
    """seed of the world and of the sampling noise"""
    json_out: str = "runs/benchmark.json"
    """where the numbers go as JSON"""


@dataclasses.dataclass
class BenchStartupConfig:
    """``bench_startup``: time ``--help`` of every command and the no-display line of play_game."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "rounds": "[1, inf)",
        "target_s": "(0, inf)",
    }

    scripts: list[str] = dataclasses.field(default_factory=list)
    """the commands to time (default: every module of src/scripts)"""
    rounds: int = 3
    """runs of each command, interleaved"""
    no_display: bool = True
    """also time play_game started with no display (it answers with one line, exit code 2)"""
    target_s: float = 2.0
    """the wall time each start should stay under (the table marks the slower ones)"""
    json_out: str = "runs/bench_startup.json"
    """where the results go (JSON)"""


@dataclasses.dataclass
class BenchGameConfig:
    """``bench_game``: time the world and the G-buffer renderer per frame."""

    RANGES = {  # each numeric field's allowed values (src/common/ranges.py check_ranges)
        "frames": "[1, inf)",
        "warmup_frames": "[0, inf)",
        "fps": "[1, inf)",
        "seed": "[0, inf)",
    }

    resolutions: list[str] = dataclasses.field(default_factory=lambda: ["224x224", "320x320", "512x512"])
    """WIDTHxHEIGHT render sizes to time: --resolutions 224x224 320x320"""
    frames: int = 200
    """timed frames per resolution"""
    warmup_frames: int = 10
    """untimed frames before the timed ones, per resolution"""
    fps: int = 30
    """game steps per second (fixed dt = 1 / fps)"""
    seed: int = 0
    """seed of the world"""
    level: str = DEFAULT_LEVEL
    """the level file (YAML with the fields of WorldConfig) the world is built from"""
    json_out: str = "runs/bench_game.json"
    """where the numbers go as JSON (empty: nowhere)"""
    camera: CameraConfig = dataclasses.field(default_factory=CameraConfig)
    """the first-person rider camera"""
