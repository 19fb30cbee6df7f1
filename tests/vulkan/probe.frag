#version 450
// Reads one byte of a result and turns it into a sample count: drawn over a 256x1
// target, the fragments with x < value pass, so the draw's precise occlusion query
// counts `value`. vk_check.c reads results this way, through vkGetQueryPoolResults,
// because it cannot map memory the device wrote (see vk_check.c).
layout(set = 0, binding = 0) uniform sampler2D image;
layout(std430, set = 0, binding = 1) readonly buffer Dst { uint v[]; } dst;
layout(push_constant) uniform Probe {
    uint kind;   // 0: a pixel of the rendered image, 1: a value of the compute result
    uint index;  // pixel y * width + x, or value index
    uint byte;   // channel (r, g, b, a) or byte (least significant first)
    uint width;  // the image's width
} probe;
layout(location = 0) out vec4 color;

void main()
{
    uint value;
    if (probe.kind == 0u) {
        ivec2 p = ivec2(int(probe.index % probe.width), int(probe.index / probe.width));
        value = uint(round(texelFetch(image, p, 0)[probe.byte] * 255.0));
    } else {
        value = (dst.v[probe.index] >> (8u * probe.byte)) & 255u;
    }
    if (uint(gl_FragCoord.x) >= value)
        discard;
    color = vec4(1.0);
}
