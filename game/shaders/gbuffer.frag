#version 330
// Writes the G-buffer: lit colour, albedo + semantic, view normal + axis depth, flow.
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

layout(location = 0) out vec4 out_colour;
layout(location = 1) out vec4 out_albedo_semantic;
layout(location = 2) out vec4 out_normal_depth;
layout(location = 3) out vec2 out_flow;

void main() {
    vec3 normal = normalize(v_view_normal);
    float depth = -v_view_z;  // linear distance along the camera axis, metres

    // pixel coordinates of this image: x right, y down, pixel centres at +0.5
    vec2 now_px = vec2(gl_FragCoord.x, u_resolution.y - gl_FragCoord.y);
    vec2 flow = vec2(0.0);
    if (v_prev_clip.w > 1e-4) {
        vec2 ndc = v_prev_clip.xy / v_prev_clip.w;
        vec2 prev_px = vec2((ndc.x * 0.5 + 0.5) * u_resolution.x, (0.5 - ndc.y * 0.5) * u_resolution.y);
        flow = now_px - prev_px;
    }

    float diffuse = max(dot(normal, u_sun_view), 0.0);
    float sky_light = 0.5 + 0.5 * normal.y;  // rough view-space up
    vec3 lit = v_albedo * (0.35 + 0.2 * sky_light + 0.75 * diffuse);
    float fog = clamp((depth - u_fog_start_m) / (u_fog_end_m - u_fog_start_m), 0.0, 1.0);
    lit = mix(lit, u_sky_colour, fog * fog);

    out_colour = vec4(clamp(lit, 0.0, 1.0), 1.0);
    out_albedo_semantic = vec4(v_albedo, v_semantic);
    out_normal_depth = vec4(normal, depth);
    out_flow = flow;
}
