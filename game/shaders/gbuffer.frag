#version 330
// Writes the G-buffer: lit colour, albedo, semantic, view normal + axis depth, flow.
// Surfaces carry a procedural pattern (PATTERN; ids in src/game/instances.py PATTERNS) that
// changes their albedo or cuts holes (discard: a window shows the recessed glass behind it, so
// depth, normals, flow and semantic are those of real geometry). Colours come from uniforms
// measured on real footage (game/city_palette.yaml) or from the instance's albedo.
uniform vec2 u_resolution;         // width, height in pixels
uniform vec3 u_sun_view;           // unit direction toward the sun, view space
uniform vec3 u_sky_colour;
uniform float u_fog_start_m;
uniform float u_fog_end_m;
uniform vec3 u_road_colours[4];    // asphalt k-means centres, by share
uniform vec4 u_road_shares;
uniform vec3 u_sidewalk_colours[3];
uniform vec3 u_sidewalk_shares;
uniform vec3 u_glass_colour;
uniform float u_window_detail_m;   // windows are cut only nearer than this (their glass is drawn there)

in vec4 v_prev_clip;
in float v_view_z;
in vec3 v_view_normal;
in vec3 v_albedo;
in vec3 v_local_m;
flat in float v_semantic;
flat in vec3 v_local_normal;
flat in vec4 v_pattern;
flat in vec4 v_size_seed;

layout(location = 0) out vec3 out_colour;
layout(location = 1) out vec3 out_albedo;
layout(location = 2) out float out_semantic;  // id / 255 into an 8-bit target: exact
layout(location = 3) out vec4 out_normal_depth;
layout(location = 4) out vec2 out_flow;

float hash(vec2 p) {  // arithmetic only (no sin: slow on a CPU rasteriser); D. Hoskins' hash12
    vec3 p3 = fract(vec3(p.xyx) * 0.1031);
    p3 += dot(p3, p3.yzx + 33.33);
    return fract((p3.x + p3.y) * p3.z);
}

float value_noise(vec2 p) {
    vec2 i = floor(p), f = fract(p);
    vec2 u = f * f * (3.0 - 2.0 * f);
    return mix(mix(hash(i), hash(i + vec2(1, 0)), u.x), mix(hash(i + vec2(0, 1)), hash(i + vec2(1, 1)), u.x), u.y);
}

vec3 road_colour(float u) {  // a k-means centre drawn by its share
    if (u < u_road_shares.x) return u_road_colours[0];
    if (u < u_road_shares.x + u_road_shares.y) return u_road_colours[1];
    if (u < u_road_shares.x + u_road_shares.y + u_road_shares.z) return u_road_colours[2];
    return u_road_colours[3];
}

vec3 sidewalk_colour(float u) {
    if (u < u_sidewalk_shares.x) return u_sidewalk_colours[0];
    if (u < u_sidewalk_shares.x + u_sidewalk_shares.y) return u_sidewalk_colours[1];
    return u_sidewalk_colours[2];
}

// asphalt: resurfaced areas, small patches, cracks (world metres: x across, z = -s)
vec3 asphalt(vec2 world, float px_m) {
    vec3 colour = road_colour(hash(floor(world / vec2(3.5, 9.0))));
    vec2 cell = floor(world / vec2(2.5, 4.0));
    vec2 inside = fract(world / vec2(2.5, 4.0));
    float h = hash(cell + 17.0);
    if (h < 0.22 && all(greaterThan(inside, vec2(0.15))) && all(lessThan(inside, vec2(0.2 + 3.0 * h + 0.2))))
        colour = road_colour(hash(cell + 3.0));
    float crack = abs(value_noise(world * vec2(0.7, 0.25)) - 0.5);
    if (px_m < 0.05 && crack < 0.012 && hash(floor(world / 9.0)) > 0.45) colour = u_road_colours[3];
    return colour;
}

// facade of a building: window grid per floor, storefronts and doors on the ground floor.
// Windows are holes: the glass box behind shows through, recessed (src/game/meshes.py).
vec3 facade(vec3 wall, float floor_m, float spacing_m, float material) {
    if (abs(v_local_normal.y) > 0.5) return wall;  // roof
    // window half-width (of a bay) and sill/head per material: brick, concrete, stucco, glass
    vec3 shape = material < 0.5 ? vec3(0.2, 0.22, 0.82)
               : material < 1.5 ? vec3(0.42, 0.3, 0.78)
               : material < 2.5 ? vec3(0.28, 0.25, 0.8)
               : vec3(0.47, 0.04, 0.96);
    bool faces_x = abs(v_local_normal.x) > 0.5;
    float u = faces_x ? v_local_m.z : v_local_m.x;
    float width = faces_x ? v_size_seed.z : v_size_seed.x;
    float h = v_local_m.y + 0.5 * v_size_seed.y;

    float ground_m = 1.25 * floor_m;
    // Windows are cut only near, where a bay spans 3 pixels both ways. Elsewhere they are albedo:
    // rows of the bays' mean colour where floors still span 3 pixels (an oblique facade), else
    // the whole grid's mean colour (real flat colour is smooth; aliased grids are not).
    bool rows_resolved = floor_m >= 3.0 * fwidth(h);
    if (spacing_m < 3.0 * fwidth(u) || !rows_resolved || -v_view_z > u_window_detail_m) {
        if (!rows_resolved) return mix(wall, u_glass_colour, 2.0 * shape.x * (shape.z - shape.y));
        if (h < ground_m) return h > 0.55 && h < ground_m - 0.7 ? mix(wall, u_glass_colour, 0.88) : wall;
        float row = fract((h - ground_m) / floor_m);
        bool in_row = row > shape.y && row < shape.z && h < v_size_seed.y - 1.0;
        return in_row ? mix(wall, u_glass_colour, 2.0 * shape.x) : wall;
    }
    float columns = max(1.0, floor(width / spacing_m));
    float cu = (u / width + 0.5) * columns;
    float fu = fract(cu);
    if (h < ground_m) {  // storefronts, a door in some bays, a fascia above
        bool door = hash(vec2(floor(cu), v_size_seed.w)) < 0.35;
        if (door && abs(fu - 0.5) < 0.16 && h < 2.3) discard;
        if (abs(fu - 0.5) < 0.44 && h > 0.55 && h < ground_m - 0.7) discard;
        if (h > ground_m - 0.7) return mix(wall, u_glass_colour, 0.5);
        return wall;
    }
    if (h > v_size_seed.y - 1.0) return wall;  // parapet
    float fv = fract((h - ground_m) / floor_m);
    float du = abs(fu - 0.5), frame_u = 0.08 * columns / width;
    if (du < shape.x && fv > shape.y && fv < shape.z) discard;
    if (du < shape.x + frame_u && fv > shape.y - 0.05 && fv < shape.z + 0.03)
        return mix(wall, u_glass_colour, 0.35);  // frames and sills
    if (material > 0.5 && material < 1.5 && fv < 0.12) return mix(wall, u_glass_colour, 0.2);  // floor slabs
    return wall;
}

// metres per pixel on this surface: detail finer than a few pixels is drawn as its mean
// (real flat colour is smoothed; aliased 1-pixel grids are not what a camera sees)
float metres_per_pixel() {
    return max(length(dFdx(v_local_m)), length(dFdy(v_local_m)));
}

// The raster compiles one program per pattern (#define PATTERN, ids in src/game/instances.py):
// a CPU rasteriser would otherwise run every branch below for every pixel.
vec3 pattern_albedo() {
#if PATTERN == 1
    return facade(v_albedo, v_pattern.y, v_pattern.z, v_pattern.w);
#elif PATTERN == 2
    return asphalt(vec2(v_local_m.x + v_pattern.y, v_local_m.z + v_pattern.z), metres_per_pixel());
#elif PATTERN == 3
    // a lane marking: dashed (length, period, centre z), worn
    float s = -(v_local_m.z + v_pattern.w);
    if (v_pattern.y > 0.0 && mod(s, v_pattern.z) > v_pattern.y) discard;
    if (value_noise(vec2(v_local_m.x * 9.0, s * 3.0) + v_size_seed.w) < 0.3) discard;
    return v_albedo;
#elif PATTERN == 4
    // pavement slabs with joints, the kerb edge plain
    if (v_local_normal.y < 0.5) return v_albedo;
    vec2 world = vec2(v_local_m.x + v_pattern.y, v_local_m.z + v_pattern.z) / v_pattern.w;
    vec2 joint = abs(fract(world) - 0.5);
    if (v_pattern.w > 6.0 * metres_per_pixel() && max(joint.x, joint.y) > 0.47) return u_sidewalk_colours[0] * 0.8;
    return sidewalk_colour(hash(floor(world)));
#elif PATTERN == 5
    // crosswalk bars along local x (y = 0) or z (y = 1), worn
    float along = v_pattern.y < 0.5 ? v_local_m.x : v_local_m.z;
    if (fract(along / v_pattern.z) > 0.5) discard;
    if (value_noise(v_local_m.xz * 4.0 + v_size_seed.w) < 0.25) discard;
    return v_albedo;
#elif PATTERN == 6
    // glass behind the windows: panes of varying darkness
    vec3 cell = floor(v_local_m / vec3(1.6, 1.4, 1.6));
    return v_albedo * (0.85 + 0.3 * hash(cell.xy + cell.z * 7.0 + v_size_seed.w));
#elif PATTERN == 7
    // traffic-light head: three lamps on the faces along z, one lit
    if (abs(v_local_normal.z) < 0.5) return v_albedo;
    for (int i = 0; i < 3; i++) {
        vec2 centre = vec2(0.0, 0.3 * float(1 - i) * v_size_seed.y);
        if (length(v_local_m.xy - centre) < 0.11) {
            vec3 lamp = i == 0 ? vec3(0.9, 0.1, 0.08) : i == 1 ? vec3(0.95, 0.65, 0.1) : vec3(0.1, 0.85, 0.4);
            return int(v_pattern.y + 0.5) == i ? lamp : lamp * 0.25;
        }
    }
    return v_albedo;
#else
    return v_albedo;
#endif
}

void main() {
    vec3 albedo = pattern_albedo();
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
    vec3 lit = albedo * (0.35 + 0.2 * sky_light + 0.75 * diffuse);
    float fog = clamp((depth - u_fog_start_m) / (u_fog_end_m - u_fog_start_m), 0.0, 1.0);
    lit = mix(lit, u_sky_colour, fog * fog);

    out_colour = clamp(lit, 0.0, 1.0);
    out_albedo = albedo;
    out_semantic = v_semantic;
    out_normal_depth = vec4(normal, depth);
    out_flow = flow;
}
