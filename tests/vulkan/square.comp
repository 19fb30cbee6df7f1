#version 450
// dst[i] = x * x + (i ^ salt) with x = i * 2654435761, in uint32 arithmetic
// (compute_expected in vk_check.c).
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer Dst { uint v[]; } dst;
layout(push_constant) uniform Push { uint salt; } push;

void main()
{
    uint i = gl_GlobalInvocationID.x;
    uint x = i * 2654435761u;
    dst.v[i] = x * x + (i ^ push.salt);
}
