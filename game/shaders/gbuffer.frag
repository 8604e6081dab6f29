#version 330
// Writes the G-buffer: lit colour, albedo, semantic, view normal + axis depth, flow.
uniform vec2 u_resolution;         // width, height in pixels
uniform vec3 u_sun_view;           // unit direction toward the sun, view space
uniform vec3 u_sky_colour;
uniform float u_fog_start_m;
uniform float u_fog_end_m;

in vec4 v_prev_clip;
in float v_view_z;
in vec3 v_view_normal;
in vec3 v_albedo;
flat in float v_semantic;

layout(location = 0) out vec3 out_colour;
layout(location = 1) out vec3 out_albedo;
layout(location = 2) out float out_semantic;  // id / 255 into an 8-bit target: exact
layout(location = 3) out vec4 out_normal_depth;
layout(location = 4) out vec2 out_flow;

void main() {
    vec3 normal = normalize(v_view_normal);
    float depth = -v_view_z;  // linear distance along the camera axis, metres

    // The projection is flipped vertically (framebuffer row 0 = image top), so window
    // coordinates are this image's pixel coordinates: x right, y down, centres at +0.5.
    vec2 now_px = gl_FragCoord.xy;
    vec2 flow = vec2(0.0);
    if (v_prev_clip.w > 1e-4) {
        vec2 prev_px = (v_prev_clip.xy / v_prev_clip.w * 0.5 + 0.5) * u_resolution;
        flow = now_px - prev_px;
    }

    float diffuse = max(dot(normal, u_sun_view), 0.0);
    float sky_light = 0.5 + 0.5 * normal.y;  // rough view-space up
    vec3 lit = v_albedo * (0.35 + 0.2 * sky_light + 0.75 * diffuse);
    float fog = clamp((depth - u_fog_start_m) / (u_fog_end_m - u_fog_start_m), 0.0, 1.0);
    lit = mix(lit, u_sky_colour, fog * fog);

    out_colour = clamp(lit, 0.0, 1.0);
    out_albedo = v_albedo;
    out_semantic = v_semantic;
    out_normal_depth = vec4(normal, depth);
    out_flow = flow;
}
