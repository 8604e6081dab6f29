"""The G-buffer rasteriser (`GBufferRaster`): one offscreen moderngl framebuffer with four colour targets.

Targets (rendered upside down so that row 0 read back is the top of the image):

- 0 ``RGB8``    lit flat colour (the raster view)
- 1 ``RGB8``    albedo
- 2 ``R8``      semantic id / 255 (exact for ids < 256)
- 3 ``RGBA32F`` view-space normal in xyz, axis depth in metres in w
- 4 ``RG32F``   flow ``x_t - x_{t-1}`` in pixels of this image (x right, y down)

The geometry draws with one instanced call per mesh; then a full-screen sky pass on the far
plane (depth test ``<=``) writes every target of every pixel no geometry covered (sky depth
``SKY_DEPTH_M``, normal facing the camera, rotation-only flow), so no target keeps values
from an earlier frame and only the depth buffer needs clearing. Each
instance carries its current and previous MVP, so flow is exact per object. The context is
always offscreen (EGL when headless); the window shows the read-back arrays.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import statistics
from pathlib import Path

import numpy as np

from src.common.errors import UserError
from src.common.gbuffer import SKY_DEPTH_M, GBuffer
from src.game.camera import Intrinsics
from src.game.config import CameraConfig
from src.game.meshes import MESHES, PATTERNS, WINDOW_DETAIL_M, Scene
from src.game.palette import city_palette

SHADER_DIR = Path(__file__).resolve().parents[2] / "game" / "shaders"
SUN_DIRECTION_WORLD = np.array([0.45, 0.8, 0.35]) / np.linalg.norm([0.45, 0.8, 0.35])
HORIZON_COLOUR = (0.78, 0.84, 0.9)
ZENITH_COLOUR = (0.35, 0.55, 0.85)
INSTANCE_ATTRIBUTES = (  # per-instance vertex attributes and their floats, in buffer order
    ("in_mvp", 16),
    ("in_prev_mvp", 16),
    ("in_normal_matrix", 9),
    ("in_albedo_semantic", 4),
    ("in_pattern", 4),
    ("in_size_seed", 4),
)
DRAW_ORDER = [
    PATTERNS[name]
    for name in ("plain", "traffic_light", "asphalt", "slabs", "facade", "glass", "marking", "crosswalk")
]
INSTANCE_FLOATS = sum(floats for _, floats in INSTANCE_ATTRIBUTES)


def cloud_threshold(cover: float) -> float:
    """The level of sky.frag's value noise (about normal, mean 0.5, sd 0.2) exceeded on ``cover``
    of the sky."""
    return 0.5 + 0.2 * statistics.NormalDist().inv_cdf(1.0 - cover)


class NoOpenGLContextError(UserError):
    """No OpenGL 3.3 context can be made on this machine (no EGL driver and no display)."""


def load_triton_before_gl() -> None:
    """Loads triton's native library, when it is installed, before any OpenGL context exists.

    Mesa's EGL driver and triton's library clash: a process that makes an EGL context and then
    loads triton (torch does so lazily: ``torch.optim``, ``torch.compile``, diffusers) dies with
    SIGSEGV. Loaded in the other order both work. The library is triton's own (no torch), and
    every context of the project is made here, so this is the one place that fixes the order.
    """
    if importlib.util.find_spec("triton") is None:
        return
    try:
        importlib.import_module("triton._C.libtriton")
    except ImportError:  # a triton without the native module cannot clash with Mesa either
        pass


def create_headless_context(backend: str = "egl"):
    """A standalone OpenGL 3.3 context; EGL first (no display needed), then the platform default."""
    import moderngl

    load_triton_before_gl()
    errors = []
    for kwargs in ({"backend": backend}, {}):
        try:
            return moderngl.create_context(standalone=True, require=330, **kwargs)
        except Exception as error:  # noqa: BLE001 - report every attempt below
            errors.append(f"{kwargs or 'default'}: {error}")
    raise NoOpenGLContextError(
        "could not create an OpenGL 3.3 context (" + "; ".join(errors) + ")",
        "Install an EGL driver (Mesa: libegl1 libgl1-mesa-dri) or run with a display.",
    )


class GBufferRaster:
    """Renders a ``Scene`` from a camera into a ``GBuffer`` at ``width`` x ``height``."""

    def __init__(
        self,
        width: int,
        height: int,
        camera: CameraConfig | None = None,
        *,
        ctx=None,
        fog_start_m: float = 110.0,
        fog_end_m: float = 330.0,
    ):
        camera = camera or CameraConfig()
        self.intrinsics = Intrinsics(width, height, camera.fov_y_deg, camera.near_m, camera.far_m)
        # Render upside down (clip y negated) so that framebuffer row 0 is the image's top row:
        # readback needs no flip and gl_FragCoord is the image pixel coordinate (y down).
        # The exposed ``intrinsics.projection_matrix()`` stays the standard OpenGL one.
        self.projection = np.diag([1.0, -1.0, 1.0, 1.0]) @ self.intrinsics.projection_matrix()
        self.ctx = ctx or create_headless_context()
        ctx = self.ctx
        self._geometry_sources = (
            (SHADER_DIR / "gbuffer.vert").read_text(),
            (SHADER_DIR / "gbuffer.frag").read_text(),
        )
        self._fog_m = (fog_start_m, fog_end_m)
        self._programs: dict[int, object] = {}  # pattern id -> the fragment shader holding only it
        self.sky_program = ctx.program(
            vertex_shader=(SHADER_DIR / "sky.vert").read_text(),
            fragment_shader=(SHADER_DIR / "sky.frag").read_text(),
        )
        size = (width, height)
        self.targets = [
            ctx.texture(size, 3, dtype="f1"),
            ctx.texture(size, 3, dtype="f1"),
            ctx.texture(size, 1, dtype="f1"),
            ctx.texture(size, 4, dtype="f4"),
            ctx.texture(size, 2, dtype="f4"),
        ]
        self.depth_buffer = ctx.depth_texture(size)
        self.fbo = ctx.framebuffer(color_attachments=self.targets, depth_attachment=self.depth_buffer)
        self.sky_vao = ctx.vertex_array(self.sky_program, [])
        self._meshes = {name: (ctx.buffer(v.tobytes()), len(v)) for name, v in MESHES.items()}
        self._vaos: dict[tuple[str, int], dict] = {}  # (mesh, pattern) -> instance buffer and VAO
        s = self.sky_program
        s["u_resolution"].value = size
        tan_y = math.tan(math.radians(camera.fov_y_deg) / 2)
        s["u_tan_half_fov"].value = (tan_y * width / height, tan_y)
        s["u_projection"].write(self.projection.T.astype("f4").tobytes())
        s["u_sky_depth_m"].value = SKY_DEPTH_M
        s["u_horizon_colour"].value = HORIZON_COLOUR
        s["u_zenith_colour"].value = ZENITH_COLOUR
        self._set_palette_uniforms()
        self.geometry_program = self._program(0)

    def _program(self, pattern: int):
        """The geometry program for one surface pattern, compiled on first use. A CPU rasteriser
        runs every branch of a shader for every pixel, so each pattern gets a shader of its own
        (``#define PATTERN``) and each (mesh, pattern) one instanced draw call."""
        if pattern not in self._programs:
            vertex, fragment = self._geometry_sources
            header, body = fragment.split("\n", 1)  # after #version
            p = self.ctx.program(
                vertex_shader=vertex, fragment_shader=f"{header}\n#define PATTERN {pattern}\n{body}"
            )
            p["u_resolution"].value = (self.width, self.height)
            p["u_sky_colour"].value = HORIZON_COLOUR
            p["u_fog_start_m"].value, p["u_fog_end_m"].value = self._fog_m
            self._programs[pattern] = p
            self._set_palette_uniforms()
        return self._programs[pattern]

    def _set_palette_uniforms(self) -> None:
        """The measured colours the shaders' patterns use (game/city_palette.yaml)."""
        pal = city_palette()
        sky, sky_shares = pal.colours("sky"), pal.shares("sky")
        geometry = {
            "u_road_colours": pal.colours("road")[:4],
            "u_road_shares": np.pad(pal.shares("road"), (0, 4))[:4],
            "u_sidewalk_colours": pal.colours("sidewalk")[:3],
            "u_sidewalk_shares": np.pad(pal.shares("sidewalk"), (0, 3))[:3],
            "u_glass_colour": pal.half_mean("building", "dark"),  # the mean of what glass draws from
            "u_window_detail_m": np.float32(WINDOW_DETAIL_M),
        }
        values = {program: geometry for program in self._programs.values()}
        values[self.sky_program] = {  # the sky's two largest clusters: cloud and clear sky
            "u_cloud_albedo": sky[0],
            "u_sky_albedo": sky[1],
            "u_cloud_threshold": np.float32(cloud_threshold(sky_shares[0] / (sky_shares[0] + sky_shares[1]))),
            "u_sun_world": SUN_DIRECTION_WORLD,
        }
        for program, uniforms in values.items():
            for name, value in uniforms.items():
                if name in program:  # a uniform the shader does not read is compiled away
                    program[name].write(np.asarray(value, "f4").tobytes())

    @property
    def width(self) -> int:
        return self.intrinsics.width

    @property
    def height(self) -> int:
        return self.intrinsics.height

    def _mesh_vao(self, name: str, pattern: int, count: int) -> dict:
        key = (name, pattern)
        entry = self._vaos.setdefault(key, {"capacity": 0, "ibo": None, "vao": None})
        if count > entry["capacity"]:
            capacity = max(64, 1 << (count - 1).bit_length())
            if entry["vao"] is not None:
                entry["vao"].release()
                entry["ibo"].release()
            vbo, _ = self._meshes[name]
            program = self._program(pattern)
            entry["ibo"] = self.ctx.buffer(reserve=capacity * INSTANCE_FLOATS * 4, dynamic=True)
            used = [(n, f) for n, f in INSTANCE_ATTRIBUTES if n in program]  # a plain shader has fewer
            layout = " ".join(f"{f}f" if n in program else f"{4 * f}x" for n, f in INSTANCE_ATTRIBUTES)
            entry["vao"] = self.ctx.vertex_array(
                program,
                [
                    (vbo, "3f 3f", "in_position", "in_normal"),
                    (entry["ibo"], layout + "/i", *(n for n, _ in used)),
                ],
            )
            entry["capacity"] = capacity
        return entry

    def instance_data(self, batch, view: np.ndarray, prev_view: np.ndarray) -> np.ndarray:
        """Per-instance attributes (n 53 float32), matrices column-major as GLSL reads them."""
        model_view = view @ batch.model  # n 4 4, float64 so that long distances cancel exactly
        mvp = self.projection @ model_view
        prev_mvp = self.projection @ (prev_view @ batch.prev_model)
        normal_matrix = np.linalg.inv(model_view[:, :3, :3]).transpose(0, 2, 1)
        n = len(batch)
        data = np.empty((n, INSTANCE_FLOATS), np.float32)
        data[:, 0:16] = mvp.transpose(0, 2, 1).reshape(n, 16)
        data[:, 16:32] = prev_mvp.transpose(0, 2, 1).reshape(n, 16)
        data[:, 32:41] = normal_matrix.transpose(0, 2, 1).reshape(n, 9)
        data[:, 41:44] = batch.albedo
        data[:, 44] = batch.semantic.astype(np.float32) / 255.0
        data[:, 45:49] = batch.pattern
        data[:, 49:53] = batch.size_seed
        return data

    def render(self, scene: Scene, view: np.ndarray, prev_view: np.ndarray | None = None) -> GBuffer:
        """Draw ``scene`` seen through ``view`` (world -> camera) and read it back. Flow is relative
        to ``prev_view`` and each instance's previous model matrix; no ``prev_view``: a still camera."""
        self.draw(scene, view, prev_view)
        return self.read()

    def draw(self, scene: Scene, view: np.ndarray, prev_view: np.ndarray | None = None) -> None:
        """Issue the draw calls only (``read`` waits for them); see ``render``."""
        prev_view = view if prev_view is None else prev_view
        ctx = self.ctx
        # Another renderer's context may be current (a validation ride beside training's game
        # clips); GL names would then reach that context's objects. Make ours current first.
        ctx.__enter__()
        self.fbo.use()
        ctx.viewport = (0, 0, self.width, self.height)
        self.fbo.clear(depth=1.0)  # colour targets: every pixel is written by geometry or the sky

        ctx.disable(ctx.CULL_FACE | ctx.BLEND)
        ctx.enable(ctx.DEPTH_TEST)
        ctx.depth_func = "<"
        sun_view = tuple(view[:3, :3] @ SUN_DIRECTION_WORLD)
        draws = []  # (pattern, mesh, its instances in buffer layout)
        for name, batch in scene.items():
            if len(batch) == 0:
                continue
            data = self.instance_data(batch, view, prev_view)
            patterns = batch.pattern[:, 0].astype(np.int64)
            order = np.argsort(patterns, kind="stable")
            kinds, starts = np.unique(patterns[order], return_index=True)
            for kind, start, end in zip(kinds, starts, [*starts[1:], len(order)]):
                draws.append((int(kind), name, data[order[start:end]]))
        # plain things first, cut-out patterns last: what stands in front hides them early
        for kind, name, data in sorted(draws, key=lambda d: (DRAW_ORDER.index(d[0]), d[1])):
            entry = self._mesh_vao(name, kind, len(data))
            self._program(kind)["u_sun_view"].value = sun_view
            entry["ibo"].write(data.tobytes())
            entry["vao"].render(vertices=self._meshes[name][1], instances=len(data))

        # the sky last, on the far plane: it shades only the pixels no geometry covered
        ctx.depth_func = "<="
        s = self.sky_program
        s["u_view_to_prev_view"].write((prev_view[:3, :3] @ view[:3, :3].T).T.astype("f4").tobytes())
        s["u_view_up"].value = tuple(view[:3, 1])
        s["u_view_to_world"].write(view[:3, :3].astype("f4").tobytes())  # transposed = inverse, column-major
        self.sky_vao.render(vertices=3)
        ctx.depth_func = "<"

    def read(self) -> GBuffer:
        """Read the targets back into a ``GBuffer`` (row 0 = top). ``normals`` and ``depth`` are
        strided views of one RGBA32F array (no copy); every array is fresh and writable."""
        h, w = self.height, self.width
        self.ctx.__enter__()  # see draw()
        colour = np.empty((h, w, 3), np.uint8)
        albedo = np.empty((h, w, 3), np.uint8)
        semantic = np.empty((h, w), np.uint8)
        normal_depth = np.empty((h, w, 4), np.float32)
        flow = np.empty((h, w, 2), np.float32)
        for target, array in zip(self.targets, (colour, albedo, semantic, normal_depth, flow)):
            target.read_into(array, alignment=1)
        return GBuffer(
            color=colour,
            depth=normal_depth[..., 3],
            flow=flow,
            normals=normal_depth[..., :3],
            albedo=albedo,
            semantic=semantic,
        )

    def release(self) -> None:
        for entry in self._vaos.values():
            entry["vao"].release()
            entry["ibo"].release()
        for vbo, _ in self._meshes.values():
            vbo.release()
        for program in self._programs.values():
            program.release()
        self.fbo.release()
        for texture in self.targets:
            texture.release()
        self.depth_buffer.release()
        self.sky_vao.release()
        self.sky_program.release()
