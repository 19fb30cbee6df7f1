#version 450
// The known pattern vk_check.c expects (pattern_texel there): every channel k/255, which
// an 8-bit UNORM target stores exactly as k.
layout(location = 0) out vec4 color;

void main()
{
    ivec2 p = ivec2(gl_FragCoord.xy);
    color = vec4(float((p.x * 4) & 255), float((p.y * 4) & 255),
                 float(((p.x ^ p.y) * 8) & 255), 255.0) / 255.0;
}
