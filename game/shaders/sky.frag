#version 330
// The sky is infinitely far away: depth = the sky constant, normal faces the camera,
// and its flow is the reprojection of the view direction under the camera's rotation only.
// Clouds hang on a plane at infinity (they too move with the rotation only); the sun lights
// their side facing it, from the same direction as the geometry's diffuse light.
uniform vec2 u_resolution;
uniform vec2 u_tan_half_fov;        // tan(fov_x / 2), tan(fov_y / 2)
uniform mat3 u_view_to_prev_view;   // rotation: view space now -> view space before
uniform mat3 u_view_to_world;       // rotation: view space now -> world
uniform mat4 u_projection;        // flipped: clip y points down the image
uniform float u_sky_depth_m;
uniform vec3 u_view_up;             // world up, in view space
uniform vec3 u_sun_world;           // unit direction toward the sun, world space
uniform vec3 u_horizon_colour;
uniform vec3 u_zenith_colour;
uniform vec3 u_sky_albedo;          // clear sky, measured (game/city_palette.yaml)
uniform vec3 u_cloud_albedo;        // cloud, measured
uniform float u_cloud_threshold;    // noise level above which there is cloud (sets the cover)

layout(location = 0) out vec3 out_colour;
layout(location = 1) out vec3 out_albedo;
layout(location = 2) out float out_semantic;  // id / 255 into an 8-bit target: exact
layout(location = 3) out vec4 out_normal_depth;
layout(location = 4) out vec2 out_flow;

float hash(vec2 p) {
    return fract(sin(dot(p, vec2(127.1, 311.7))) * 43758.5453);
}

float value_noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash(i), hash(i + vec2(1, 0)), u.x), mix(hash(i + vec2(0, 1)), hash(i + vec2(1, 1)), u.x), u.y);
}

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
    vec3 world = u_view_to_world * ray;
    vec2 plane = world.xz / max(world.y, 0.12);  // a cloud layer, in layer heights
    float n = value_noise(plane);
    float cloud = smoothstep(u_cloud_threshold - 0.04, u_cloud_threshold + 0.04, n);
    float up = clamp(dot(ray, u_view_up), 0.0, 1.0);
    vec3 sky = mix(u_horizon_colour, u_zenith_colour, sqrt(up));
    float sunward = max(dot(world, u_sun_world), 0.0);
    vec3 cloud_lit = vec3(0.72 + 0.25 * sunward);
    out_colour = mix(sky, cloud_lit, cloud) + vec3(1.0, 0.95, 0.8) * pow(sunward, 1500.0);
    out_albedo = mix(u_sky_albedo, u_cloud_albedo, cloud);
    out_semantic = 0.0;  // sky
    out_normal_depth = vec4(-ray, u_sky_depth_m);
    out_flow = flow;
}
