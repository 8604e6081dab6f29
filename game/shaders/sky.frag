#version 330
// The sky is infinitely far away: depth = the sky constant, normal faces the camera,
// and its flow is the reprojection of the view direction under the camera's rotation only.
uniform vec2 u_resolution;
uniform vec2 u_tan_half_fov;        // tan(fov_x / 2), tan(fov_y / 2)
uniform mat3 u_view_to_prev_view;   // rotation: view space now -> view space before
uniform mat4 u_projection;        // flipped: clip y points down the image
uniform float u_sky_depth_m;
uniform vec3 u_view_up;             // world up, in view space
uniform vec3 u_horizon_colour;
uniform vec3 u_zenith_colour;
uniform vec3 u_sky_albedo;

layout(location = 0) out vec3 out_colour;
layout(location = 1) out vec3 out_albedo;
layout(location = 2) out float out_semantic;  // id / 255 into an 8-bit target: exact
layout(location = 3) out vec4 out_normal_depth;
layout(location = 4) out vec2 out_flow;

void main() {
    vec2 now_px = gl_FragCoord.xy;  // image pixels, y down (the projection is flipped)
    vec2 ndc = vec2(now_px.x / u_resolution.x * 2.0 - 1.0, 1.0 - now_px.y / u_resolution.y * 2.0);
    vec3 ray = normalize(vec3(ndc * u_tan_half_fov, -1.0));
    vec4 prev_clip = u_projection * vec4(u_view_to_prev_view * ray, 0.0);
    vec2 flow = vec2(0.0);
    if (prev_clip.w > 1e-4) {
        vec2 prev_px = (prev_clip.xy / prev_clip.w * 0.5 + 0.5) * u_resolution;
        flow = now_px - prev_px;
    }
    float up = clamp(dot(ray, u_view_up), 0.0, 1.0);
    out_colour = mix(u_horizon_colour, u_zenith_colour, sqrt(up));
    out_albedo = u_sky_albedo;
    out_semantic = 0.0;  // sky
    out_normal_depth = vec4(-ray, u_sky_depth_m);
    out_flow = flow;
}
