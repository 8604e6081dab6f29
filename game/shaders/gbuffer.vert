#version 330
// One instanced draw per mesh. Every instance carries its current and previous
// model-view-projection, so the fragment shader can compute exact per-object motion.
in vec3 in_position;
in vec3 in_normal;
in mat4 in_mvp;            // projection * view * model, now
in mat4 in_prev_mvp;       // previous projection * view * model of the same surface
in mat3 in_normal_matrix;  // inverse-transpose of the model-view's 3x3
in vec4 in_view_z_row;     // third row of view * model: view-space z of a point
in vec4 in_albedo_semantic; // rgb albedo in [0, 1], semantic id / 255

out vec4 v_prev_clip;
out float v_view_z;
out vec3 v_view_normal;
out vec3 v_albedo;
flat out float v_semantic;

void main() {
    vec4 position = vec4(in_position, 1.0);
    v_view_z = dot(in_view_z_row, position);
    v_view_normal = in_normal_matrix * in_normal;
    v_prev_clip = in_prev_mvp * position;
    v_albedo = in_albedo_semantic.rgb;
    v_semantic = in_albedo_semantic.a;
    gl_Position = in_mvp * position;
}
