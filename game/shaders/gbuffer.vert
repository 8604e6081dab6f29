#version 330
// One instanced draw per mesh. Every instance carries its current and previous
// model-view-projection, so the fragment shader can compute exact per-object motion.
in vec3 in_position;
in vec3 in_normal;
in mat4 in_mvp;            // projection * view * model, now
in mat4 in_prev_mvp;       // previous projection * view * model of the same surface
in mat3 in_normal_matrix;  // inverse-transpose of the model-view's 3x3
in vec4 in_albedo_semantic; // rgb albedo in [0, 1], semantic id / 255
in vec4 in_pattern;        // surface pattern id and its three parameters (gbuffer.frag)
in vec4 in_size_seed;      // the instance's size in metres (xyz) and a seed for its pattern

out vec4 v_prev_clip;
out float v_view_z;
out vec3 v_view_normal;
out vec3 v_albedo;
out vec3 v_local_m;        // position on the object in metres from its centre
flat out float v_semantic;
flat out vec3 v_local_normal;
flat out vec4 v_pattern;
flat out vec4 v_size_seed;

void main() {
    vec4 position = vec4(in_position, 1.0);
    v_view_normal = in_normal_matrix * in_normal;
    v_prev_clip = in_prev_mvp * position;
    v_albedo = in_albedo_semantic.rgb;
    v_semantic = in_albedo_semantic.a;
    v_local_m = in_position * in_size_seed.xyz;
    v_local_normal = in_normal;
    v_pattern = in_pattern;
    v_size_seed = in_size_seed;
    gl_Position = in_mvp * position;
    v_view_z = -gl_Position.w;  // the projection's last row is (0, 0, -1, 0): w = -z_view exactly
}
