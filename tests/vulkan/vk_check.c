/* vk_check: a small Vulkan program that checks its own results.
 *
 * Why: the venus tests need a real Vulkan guest whose output is known exactly, not a
 * demo that only has to not crash. Over vtest venus has no swapchain, so it renders
 * offscreen: a render pass clears a WIDTH x HEIGHT RGBA8 image and draws a pattern
 * (pattern.frag) inside a scissor rectangle, and a compute dispatch (square.comp) fills
 * COUNT uints with dst[i] = x * x + (i ^ salt), x = i * 2654435761. Every pixel is
 * compared with pattern_texel() or the clear colour, every value with
 * compute_expected().
 *
 * How the results come back: not through mapped memory. A venus guest maps device
 * memory through the fd its vtest server exports; on a host whose Vulkan driver is
 * lavapipe and that has no /dev/udmabuf (and no GPU render node), virgl_render_server
 * can only export lavapipe's memory as an "opaque" fd (a memfd whose first page is
 * Mesa's header, the data after it), which no vtest server can hand out for mapping
 * (upstream refuses it, and mapped at offset 0 it shows the header, not the data). So
 * each byte of a result is turned into a sample count instead: probe.frag, drawn over
 * a 256x1 target inside a precise occlusion query, lets `value` fragments pass, and
 * vkGetQueryPoolResults brings the counts back through the venus protocol's replies.
 * Nothing is mapped, so the same program runs through any vtest server, and on any
 * Vulkan device directly (lavapipe).
 *
 * Usage: vk_check [--iterations N] [--device SUBSTRING] [--hold]
 * Prints "device: NAME", per check "render: M/N pixels match" and "compute: M/N values
 * match", with --iterations the rate ("rate: R iterations/s", each iteration a render,
 * a dispatch, their read-back through the queries and both checks), and "PASS" or
 * "FAIL"; exit status 0 on PASS, 1 on FAIL, 2 when Vulkan itself fails (the call and
 * its VkResult are printed). --hold: after the checks print "holding" and keep every
 * object until stdin ends, so a test can look at the server's state while they exist.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vulkan/vulkan.h>

#include "pattern_frag.h"
#include "pattern_vert.h"
#include "probe_frag.h"
#include "square_comp.h"

#define WIDTH 32
#define HEIGHT 24
/* the scissor the pattern is drawn in; the rest keeps the clear colour */
#define SC_X 4
#define SC_Y 2
#define SC_W 20
#define SC_H 18
#define COUNT 1024u
#define LOCAL_SIZE 64u /* square.comp's local_size_x */
#define SALT 0x5a5a1234u
#define PIXEL_PROBES (WIDTH * HEIGHT * 4) /* a query per channel of a pixel */
#define PROBES (PIXEL_PROBES + COUNT * 4)  /* and per byte of a value */
#define PROBE_WIDTH 256                    /* one fragment per possible byte value */

static const float clear_rgba[4] = {0.2f, 0.4f, 0.6f, 1.0f};
static const uint8_t clear_bytes[4] = {51, 102, 153, 255}; /* clear_rgba in UNORM8 */

#define CHECK(call)                                                                  \
   do {                                                                             \
      VkResult r_ = (call);                                                         \
      if (r_ != VK_SUCCESS) {                                                       \
         fprintf(stderr, "vk_check: %s failed: VkResult %d\n", #call, (int)r_);     \
         exit(2);                                                                   \
      }                                                                             \
   } while (0)

static void pattern_texel(uint32_t x, uint32_t y, uint8_t out[4])
{
   out[0] = (uint8_t)((x * 4) & 255);
   out[1] = (uint8_t)((y * 4) & 255);
   out[2] = (uint8_t)(((x ^ y) * 8) & 255);
   out[3] = 255;
}

static uint32_t compute_expected(uint32_t i)
{
   uint32_t x = i * 2654435761u;
   return x * x + (i ^ SALT);
}

struct probe_push { uint32_t kind, index, byte, width; }; /* probe.frag's push constants */

struct ctx {
   VkInstance instance;
   VkPhysicalDevice phys;
   VkDevice dev;
   VkQueue queue;
   uint32_t family;
   VkPhysicalDeviceMemoryProperties memprops;
   VkCommandPool pool;
   VkCommandBuffer cmd;
   VkFence fence;
   VkPipelineLayout empty_layout;
   /* the pattern */
   VkImage image;
   VkDeviceMemory image_mem;
   VkImageView view;
   VkRenderPass pass;
   VkFramebuffer fb;
   VkPipeline gfx;
   /* compute */
   VkBuffer dst;
   VkDeviceMemory dst_mem;
   VkDescriptorSetLayout comp_set_layout;
   VkPipelineLayout comp_layout;
   VkPipeline comp;
   /* read-back probes */
   VkImage probe_image;
   VkDeviceMemory probe_mem;
   VkImageView probe_view;
   VkRenderPass probe_pass;
   VkFramebuffer probe_fb;
   VkSampler sampler;
   VkDescriptorSetLayout probe_set_layout;
   VkPipelineLayout probe_layout;
   VkPipeline probe;
   VkDescriptorPool desc_pool;
   VkDescriptorSet comp_set, probe_set;
   VkQueryPool queries;
   uint32_t results[PROBES];
};

static VkDeviceMemory allocate(struct ctx *c, VkMemoryRequirements req)
{
   uint32_t type = UINT32_MAX;
   for (uint32_t i = 0; i < c->memprops.memoryTypeCount && type == UINT32_MAX; i++)
      if ((req.memoryTypeBits & (1u << i)) &&
          (c->memprops.memoryTypes[i].propertyFlags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT))
         type = i;
   for (uint32_t i = 0; i < c->memprops.memoryTypeCount && type == UINT32_MAX; i++)
      if (req.memoryTypeBits & (1u << i))
         type = i;
   VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                              .allocationSize = req.size, .memoryTypeIndex = type};
   VkDeviceMemory mem;
   CHECK(vkAllocateMemory(c->dev, &ai, NULL, &mem));
   return mem;
}

static VkShaderModule shader(struct ctx *c, const uint32_t *code, size_t size)
{
   VkShaderModuleCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                  .codeSize = size, .pCode = code};
   VkShaderModule m;
   CHECK(vkCreateShaderModule(c->dev, &si, NULL, &m));
   return m;
}

static void init_device(struct ctx *c, const char *want)
{
   VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                            .pApplicationName = "vk_check", .apiVersion = VK_API_VERSION_1_1};
   VkInstanceCreateInfo ii = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                              .pApplicationInfo = &app};
   VkPhysicalDevice devs[16];
   uint32_t n = 16;
   VkPhysicalDeviceProperties props;
   VkPhysicalDeviceFeatures feats;
   CHECK(vkCreateInstance(&ii, NULL, &c->instance));
   VkResult r = vkEnumeratePhysicalDevices(c->instance, &n, devs);
   if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || n == 0) {
      fprintf(stderr, "vk_check: no Vulkan device (VkResult %d)\n", (int)r);
      exit(2);
   }
   c->phys = VK_NULL_HANDLE;
   for (uint32_t i = 0; i < n && !c->phys; i++) {
      vkGetPhysicalDeviceProperties(devs[i], &props);
      if (!want || strstr(props.deviceName, want))
         c->phys = devs[i];
   }
   if (!c->phys) {
      fprintf(stderr, "vk_check: no device named like \"%s\"\n", want);
      exit(2);
   }
   vkGetPhysicalDeviceProperties(c->phys, &props);
   printf("device: %s (Vulkan %u.%u.%u)\n", props.deviceName,
          VK_API_VERSION_MAJOR(props.apiVersion), VK_API_VERSION_MINOR(props.apiVersion),
          VK_API_VERSION_PATCH(props.apiVersion));
   vkGetPhysicalDeviceMemoryProperties(c->phys, &c->memprops);
   vkGetPhysicalDeviceFeatures(c->phys, &feats);
   if (!feats.occlusionQueryPrecise) {
      fprintf(stderr, "vk_check: the device has no precise occlusion queries\n");
      exit(2);
   }

   VkQueueFamilyProperties fams[16];
   uint32_t nf = 16;
   vkGetPhysicalDeviceQueueFamilyProperties(c->phys, &nf, fams);
   const VkQueueFlags need = VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_COMPUTE_BIT;
   c->family = UINT32_MAX;
   for (uint32_t i = 0; i < nf && c->family == UINT32_MAX; i++)
      if ((fams[i].queueFlags & need) == need)
         c->family = i;
   if (c->family == UINT32_MAX) {
      fprintf(stderr, "vk_check: no queue family does graphics and compute\n");
      exit(2);
   }
   const float prio = 1.0f;
   VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                 .queueFamilyIndex = c->family, .queueCount = 1,
                                 .pQueuePriorities = &prio};
   VkPhysicalDeviceFeatures enable = {.occlusionQueryPrecise = VK_TRUE};
   VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                            .queueCreateInfoCount = 1, .pQueueCreateInfos = &qi,
                            .pEnabledFeatures = &enable};
   CHECK(vkCreateDevice(c->phys, &di, NULL, &c->dev));
   vkGetDeviceQueue(c->dev, c->family, 0, &c->queue);

   VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                 .queueFamilyIndex = c->family};
   CHECK(vkCreateCommandPool(c->dev, &pi, NULL, &c->pool));
   VkCommandBufferAllocateInfo cai = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                      .commandPool = c->pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                      .commandBufferCount = 1};
   CHECK(vkAllocateCommandBuffers(c->dev, &cai, &c->cmd));
   VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
   CHECK(vkCreateFence(c->dev, &fi, NULL, &c->fence));
   VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
   CHECK(vkCreatePipelineLayout(c->dev, &li, NULL, &c->empty_layout));
}

/* A 2D RGBA8 image with its memory and view. */
static void make_image(struct ctx *c, uint32_t w, uint32_t h, VkImageUsageFlags usage,
                       VkImage *image, VkDeviceMemory *mem, VkImageView *view)
{
   VkImageCreateInfo ii = {
      .sType = VK_STRUCTURE_TYPE_IMAGE_CREATE_INFO, .imageType = VK_IMAGE_TYPE_2D,
      .format = VK_FORMAT_R8G8B8A8_UNORM, .extent = {w, h, 1}, .mipLevels = 1,
      .arrayLayers = 1, .samples = VK_SAMPLE_COUNT_1_BIT, .tiling = VK_IMAGE_TILING_OPTIMAL,
      .usage = usage, .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED};
   VkMemoryRequirements req;
   CHECK(vkCreateImage(c->dev, &ii, NULL, image));
   vkGetImageMemoryRequirements(c->dev, *image, &req);
   *mem = allocate(c, req);
   CHECK(vkBindImageMemory(c->dev, *image, *mem, 0));
   VkImageViewCreateInfo vi = {
      .sType = VK_STRUCTURE_TYPE_IMAGE_VIEW_CREATE_INFO, .image = *image,
      .viewType = VK_IMAGE_VIEW_TYPE_2D, .format = VK_FORMAT_R8G8B8A8_UNORM,
      .subresourceRange = {VK_IMAGE_ASPECT_COLOR_BIT, 0, 1, 0, 1}};
   CHECK(vkCreateImageView(c->dev, &vi, NULL, view));
}

/* A one-subpass render pass on an RGBA8 attachment: cleared and kept for the probes to
 * sample (clear) or neither loaded nor stored (the probes' target, whose samples only
 * the queries count). */
static VkRenderPass make_pass(struct ctx *c, int clear)
{
   VkAttachmentDescription att = {
      .format = VK_FORMAT_R8G8B8A8_UNORM, .samples = VK_SAMPLE_COUNT_1_BIT,
      .loadOp = clear ? VK_ATTACHMENT_LOAD_OP_CLEAR : VK_ATTACHMENT_LOAD_OP_DONT_CARE,
      .storeOp = clear ? VK_ATTACHMENT_STORE_OP_STORE : VK_ATTACHMENT_STORE_OP_DONT_CARE,
      .stencilLoadOp = VK_ATTACHMENT_LOAD_OP_DONT_CARE,
      .stencilStoreOp = VK_ATTACHMENT_STORE_OP_DONT_CARE,
      .initialLayout = VK_IMAGE_LAYOUT_UNDEFINED,
      .finalLayout = clear ? VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL
                           : VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
   VkAttachmentReference ref = {0, VK_IMAGE_LAYOUT_COLOR_ATTACHMENT_OPTIMAL};
   VkSubpassDescription sub = {.pipelineBindPoint = VK_PIPELINE_BIND_POINT_GRAPHICS,
                               .colorAttachmentCount = 1, .pColorAttachments = &ref};
   /* the probes' fragment shaders read what this pass wrote */
   VkSubpassDependency dep = {
      .srcSubpass = 0, .dstSubpass = VK_SUBPASS_EXTERNAL,
      .srcStageMask = VK_PIPELINE_STAGE_COLOR_ATTACHMENT_OUTPUT_BIT,
      .dstStageMask = VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT,
      .srcAccessMask = VK_ACCESS_COLOR_ATTACHMENT_WRITE_BIT,
      .dstAccessMask = VK_ACCESS_SHADER_READ_BIT};
   VkRenderPassCreateInfo rpi = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_CREATE_INFO,
                                 .attachmentCount = 1, .pAttachments = &att,
                                 .subpassCount = 1, .pSubpasses = &sub,
                                 .dependencyCount = clear ? 1 : 0, .pDependencies = &dep};
   VkRenderPass pass;
   CHECK(vkCreateRenderPass(c->dev, &rpi, NULL, &pass));
   return pass;
}

/* A graphics pipeline: pattern.vert's full-viewport triangle and `fs`; viewport and
 * scissor dynamic. */
static VkPipeline make_pipeline(struct ctx *c, VkRenderPass pass, VkPipelineLayout layout,
                                const uint32_t *fs_code, size_t fs_size)
{
   VkShaderModule vs = shader(c, pattern_vert, sizeof(pattern_vert));
   VkShaderModule fs = shader(c, fs_code, fs_size);
   VkPipelineShaderStageCreateInfo stages[2] = {
      {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
       .stage = VK_SHADER_STAGE_VERTEX_BIT, .module = vs, .pName = "main"},
      {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
       .stage = VK_SHADER_STAGE_FRAGMENT_BIT, .module = fs, .pName = "main"}};
   VkPipelineVertexInputStateCreateInfo vin = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_VERTEX_INPUT_STATE_CREATE_INFO};
   VkPipelineInputAssemblyStateCreateInfo ia = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_INPUT_ASSEMBLY_STATE_CREATE_INFO,
      .topology = VK_PRIMITIVE_TOPOLOGY_TRIANGLE_LIST};
   VkPipelineViewportStateCreateInfo vp = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_VIEWPORT_STATE_CREATE_INFO, .viewportCount = 1,
      .scissorCount = 1};
   VkPipelineRasterizationStateCreateInfo rs = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_RASTERIZATION_STATE_CREATE_INFO,
      .polygonMode = VK_POLYGON_MODE_FILL, .cullMode = VK_CULL_MODE_NONE,
      .frontFace = VK_FRONT_FACE_COUNTER_CLOCKWISE, .lineWidth = 1.0f};
   VkPipelineMultisampleStateCreateInfo ms = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_MULTISAMPLE_STATE_CREATE_INFO,
      .rasterizationSamples = VK_SAMPLE_COUNT_1_BIT};
   VkPipelineColorBlendAttachmentState blend = {.colorWriteMask = 0xf};
   VkPipelineColorBlendStateCreateInfo cb = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_COLOR_BLEND_STATE_CREATE_INFO,
      .attachmentCount = 1, .pAttachments = &blend};
   VkDynamicState dyn[2] = {VK_DYNAMIC_STATE_VIEWPORT, VK_DYNAMIC_STATE_SCISSOR};
   VkPipelineDynamicStateCreateInfo ds = {
      .sType = VK_STRUCTURE_TYPE_PIPELINE_DYNAMIC_STATE_CREATE_INFO, .dynamicStateCount = 2,
      .pDynamicStates = dyn};
   VkGraphicsPipelineCreateInfo gi = {
      .sType = VK_STRUCTURE_TYPE_GRAPHICS_PIPELINE_CREATE_INFO, .stageCount = 2,
      .pStages = stages, .pVertexInputState = &vin, .pInputAssemblyState = &ia,
      .pViewportState = &vp, .pRasterizationState = &rs, .pMultisampleState = &ms,
      .pColorBlendState = &cb, .pDynamicState = &ds, .layout = layout,
      .renderPass = pass, .subpass = 0};
   VkPipeline p;
   CHECK(vkCreateGraphicsPipelines(c->dev, VK_NULL_HANDLE, 1, &gi, NULL, &p));
   vkDestroyShaderModule(c->dev, vs, NULL);
   vkDestroyShaderModule(c->dev, fs, NULL);
   return p;
}

static VkFramebuffer make_fb(struct ctx *c, VkRenderPass pass, VkImageView view, uint32_t w,
                             uint32_t h)
{
   VkFramebufferCreateInfo fbi = {.sType = VK_STRUCTURE_TYPE_FRAMEBUFFER_CREATE_INFO,
                                  .renderPass = pass, .attachmentCount = 1,
                                  .pAttachments = &view, .width = w, .height = h,
                                  .layers = 1};
   VkFramebuffer fb;
   CHECK(vkCreateFramebuffer(c->dev, &fbi, NULL, &fb));
   return fb;
}

static void init_pattern(struct ctx *c)
{
   make_image(c, WIDTH, HEIGHT,
              VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT | VK_IMAGE_USAGE_SAMPLED_BIT, &c->image,
              &c->image_mem, &c->view);
   c->pass = make_pass(c, 1);
   c->fb = make_fb(c, c->pass, c->view, WIDTH, HEIGHT);
   c->gfx = make_pipeline(c, c->pass, c->empty_layout, pattern_frag, sizeof(pattern_frag));
}

static void init_compute(struct ctx *c)
{
   VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                            .size = COUNT * 4, .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                            .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
   VkMemoryRequirements req;
   CHECK(vkCreateBuffer(c->dev, &bi, NULL, &c->dst));
   vkGetBufferMemoryRequirements(c->dev, c->dst, &req);
   c->dst_mem = allocate(c, req);
   CHECK(vkBindBufferMemory(c->dev, c->dst, c->dst_mem, 0));

   VkDescriptorSetLayoutBinding bind = {0, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                        VK_SHADER_STAGE_COMPUTE_BIT, NULL};
   VkDescriptorSetLayoutCreateInfo dli = {
      .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = 1,
      .pBindings = &bind};
   CHECK(vkCreateDescriptorSetLayout(c->dev, &dli, NULL, &c->comp_set_layout));
   VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 4};
   VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1, .pSetLayouts = &c->comp_set_layout,
                                    .pushConstantRangeCount = 1, .pPushConstantRanges = &pcr};
   CHECK(vkCreatePipelineLayout(c->dev, &li, NULL, &c->comp_layout));
   VkShaderModule cs = shader(c, square_comp, sizeof(square_comp));
   VkComputePipelineCreateInfo ci = {
      .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
      .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT, .module = cs, .pName = "main"},
      .layout = c->comp_layout};
   CHECK(vkCreateComputePipelines(c->dev, VK_NULL_HANDLE, 1, &ci, NULL, &c->comp));
   vkDestroyShaderModule(c->dev, cs, NULL);
}

static void init_probes(struct ctx *c)
{
   make_image(c, PROBE_WIDTH, 1, VK_IMAGE_USAGE_COLOR_ATTACHMENT_BIT, &c->probe_image,
              &c->probe_mem, &c->probe_view);
   c->probe_pass = make_pass(c, 0);
   c->probe_fb = make_fb(c, c->probe_pass, c->probe_view, PROBE_WIDTH, 1);
   VkSamplerCreateInfo si = {.sType = VK_STRUCTURE_TYPE_SAMPLER_CREATE_INFO,
                             .magFilter = VK_FILTER_NEAREST, .minFilter = VK_FILTER_NEAREST};
   CHECK(vkCreateSampler(c->dev, &si, NULL, &c->sampler));
   VkDescriptorSetLayoutBinding binds[2] = {
      {0, VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1, VK_SHADER_STAGE_FRAGMENT_BIT, NULL},
      {1, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1, VK_SHADER_STAGE_FRAGMENT_BIT, NULL}};
   VkDescriptorSetLayoutCreateInfo dli = {
      .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO, .bindingCount = 2,
      .pBindings = binds};
   CHECK(vkCreateDescriptorSetLayout(c->dev, &dli, NULL, &c->probe_set_layout));
   VkPushConstantRange pcr = {VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof(struct probe_push)};
   VkPipelineLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                    .setLayoutCount = 1, .pSetLayouts = &c->probe_set_layout,
                                    .pushConstantRangeCount = 1, .pPushConstantRanges = &pcr};
   CHECK(vkCreatePipelineLayout(c->dev, &li, NULL, &c->probe_layout));
   c->probe = make_pipeline(c, c->probe_pass, c->probe_layout, probe_frag, sizeof(probe_frag));

   VkDescriptorPoolSize sizes[2] = {{VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, 1},
                                    {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 2}};
   VkDescriptorPoolCreateInfo dpi = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                     .maxSets = 2, .poolSizeCount = 2, .pPoolSizes = sizes};
   CHECK(vkCreateDescriptorPool(c->dev, &dpi, NULL, &c->desc_pool));
   VkDescriptorSetLayout layouts[2] = {c->comp_set_layout, c->probe_set_layout};
   VkDescriptorSet sets[2];
   VkDescriptorSetAllocateInfo dai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                      .descriptorPool = c->desc_pool,
                                      .descriptorSetCount = 2, .pSetLayouts = layouts};
   CHECK(vkAllocateDescriptorSets(c->dev, &dai, sets));
   c->comp_set = sets[0];
   c->probe_set = sets[1];
   VkDescriptorBufferInfo dst = {c->dst, 0, VK_WHOLE_SIZE};
   VkDescriptorImageInfo img = {c->sampler, c->view, VK_IMAGE_LAYOUT_SHADER_READ_ONLY_OPTIMAL};
   VkWriteDescriptorSet w[3] = {
      {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = c->comp_set,
       .dstBinding = 0, .descriptorCount = 1,
       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &dst},
      {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = c->probe_set,
       .dstBinding = 0, .descriptorCount = 1,
       .descriptorType = VK_DESCRIPTOR_TYPE_COMBINED_IMAGE_SAMPLER, .pImageInfo = &img},
      {.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = c->probe_set,
       .dstBinding = 1, .descriptorCount = 1,
       .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .pBufferInfo = &dst}};
   vkUpdateDescriptorSets(c->dev, 3, w, 0, NULL);
   VkQueryPoolCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                               .queryType = VK_QUERY_TYPE_OCCLUSION, .queryCount = PROBES};
   CHECK(vkCreateQueryPool(c->dev, &qi, NULL, &c->queries));
}

/* One iteration's commands: the pattern, the dispatch, and a probe draw in its own
 * precise occlusion query for every byte to read back. */
static void record(struct ctx *c)
{
   VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
   VkCommandBuffer cmd = c->cmd;
   CHECK(vkBeginCommandBuffer(cmd, &bi));
   vkCmdResetQueryPool(cmd, c->queries, 0, PROBES);

   VkClearValue clear;
   memcpy(clear.color.float32, clear_rgba, sizeof(clear_rgba));
   VkRenderPassBeginInfo rpb = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
                                .renderPass = c->pass, .framebuffer = c->fb,
                                .renderArea = {{0, 0}, {WIDTH, HEIGHT}},
                                .clearValueCount = 1, .pClearValues = &clear};
   vkCmdBeginRenderPass(cmd, &rpb, VK_SUBPASS_CONTENTS_INLINE);
   vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, c->gfx);
   VkViewport viewport = {0, 0, WIDTH, HEIGHT, 0, 1};
   VkRect2D scissor = {{SC_X, SC_Y}, {SC_W, SC_H}};
   vkCmdSetViewport(cmd, 0, 1, &viewport);
   vkCmdSetScissor(cmd, 0, 1, &scissor);
   vkCmdDraw(cmd, 3, 1, 0, 0);
   vkCmdEndRenderPass(cmd);

   const uint32_t salt = SALT;
   vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->comp);
   vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c->comp_layout, 0, 1,
                           &c->comp_set, 0, NULL);
   vkCmdPushConstants(cmd, c->comp_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, 4, &salt);
   vkCmdDispatch(cmd, COUNT / LOCAL_SIZE, 1, 1);
   VkMemoryBarrier written = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                              .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                              .dstAccessMask = VK_ACCESS_SHADER_READ_BIT};
   vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                        VK_PIPELINE_STAGE_FRAGMENT_SHADER_BIT, 0, 1, &written, 0, NULL, 0,
                        NULL);

   VkRenderPassBeginInfo ppb = {.sType = VK_STRUCTURE_TYPE_RENDER_PASS_BEGIN_INFO,
                                .renderPass = c->probe_pass, .framebuffer = c->probe_fb,
                                .renderArea = {{0, 0}, {PROBE_WIDTH, 1}}};
   vkCmdBeginRenderPass(cmd, &ppb, VK_SUBPASS_CONTENTS_INLINE);
   vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, c->probe);
   vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_GRAPHICS, c->probe_layout, 0, 1,
                           &c->probe_set, 0, NULL);
   VkViewport pv = {0, 0, PROBE_WIDTH, 1, 0, 1};
   VkRect2D ps = {{0, 0}, {PROBE_WIDTH, 1}};
   vkCmdSetViewport(cmd, 0, 1, &pv);
   vkCmdSetScissor(cmd, 0, 1, &ps);
   for (uint32_t q = 0; q < PROBES; q++) {
      struct probe_push p = {q < PIXEL_PROBES ? 0 : 1,
                             (q < PIXEL_PROBES ? q : q - PIXEL_PROBES) / 4, q % 4, WIDTH};
      vkCmdPushConstants(cmd, c->probe_layout, VK_SHADER_STAGE_FRAGMENT_BIT, 0, sizeof(p),
                         &p);
      vkCmdBeginQuery(cmd, c->queries, q, VK_QUERY_CONTROL_PRECISE_BIT);
      vkCmdDraw(cmd, 3, 1, 0, 0);
      vkCmdEndQuery(cmd, c->queries, q);
   }
   vkCmdEndRenderPass(cmd);
   CHECK(vkEndCommandBuffer(cmd));
}

static void run_once(struct ctx *c)
{
   VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1,
                      .pCommandBuffers = &c->cmd};
   memset(c->results, 0xff, sizeof(c->results));
   CHECK(vkQueueSubmit(c->queue, 1, &si, c->fence));
   CHECK(vkWaitForFences(c->dev, 1, &c->fence, VK_TRUE, UINT64_MAX));
   CHECK(vkResetFences(c->dev, 1, &c->fence));
   CHECK(vkGetQueryPoolResults(c->dev, c->queries, 0, PROBES, sizeof(c->results), c->results,
                               sizeof(c->results[0]), VK_QUERY_RESULT_WAIT_BIT));
}

/* Every pixel against the pattern (inside the scissor) or the clear colour; the first
 * few mismatches are printed. Returns the number of matching pixels. */
static uint32_t check_render(struct ctx *c)
{
   uint32_t ok = 0, shown = 0;
   for (uint32_t y = 0; y < HEIGHT; y++)
      for (uint32_t x = 0; x < WIDTH; x++) {
         uint8_t want[4];
         const uint32_t *got = c->results + (y * WIDTH + x) * 4;
         if (x >= SC_X && x < SC_X + SC_W && y >= SC_Y && y < SC_Y + SC_H)
            pattern_texel(x, y, want);
         else
            memcpy(want, clear_bytes, 4);
         if (got[0] == want[0] && got[1] == want[1] && got[2] == want[2] && got[3] == want[3])
            ok++;
         else if (shown++ < 5)
            printf("render: pixel %u,%u is %u,%u,%u,%u, expected %u,%u,%u,%u\n", x, y, got[0],
                   got[1], got[2], got[3], want[0], want[1], want[2], want[3]);
      }
   return ok;
}

static uint32_t check_compute(struct ctx *c)
{
   uint32_t ok = 0, shown = 0;
   for (uint32_t i = 0; i < COUNT; i++) {
      const uint32_t *b = c->results + PIXEL_PROBES + i * 4;
      uint32_t got = b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24;
      int bytes = b[0] < 256 && b[1] < 256 && b[2] < 256 && b[3] < 256;
      if (bytes && got == compute_expected(i))
         ok++;
      else if (shown++ < 5)
         printf("compute: value %u is %#x, expected %#x\n", i, got, compute_expected(i));
   }
   return ok;
}

static double now_s(void)
{
   struct timespec ts;
   clock_gettime(CLOCK_MONOTONIC, &ts);
   return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void destroy(struct ctx *c)
{
   vkDeviceWaitIdle(c->dev);
   vkDestroyQueryPool(c->dev, c->queries, NULL);
   vkDestroyDescriptorPool(c->dev, c->desc_pool, NULL);
   vkDestroyPipeline(c->dev, c->probe, NULL);
   vkDestroyPipelineLayout(c->dev, c->probe_layout, NULL);
   vkDestroyDescriptorSetLayout(c->dev, c->probe_set_layout, NULL);
   vkDestroySampler(c->dev, c->sampler, NULL);
   vkDestroyFramebuffer(c->dev, c->probe_fb, NULL);
   vkDestroyRenderPass(c->dev, c->probe_pass, NULL);
   vkDestroyImageView(c->dev, c->probe_view, NULL);
   vkDestroyImage(c->dev, c->probe_image, NULL);
   vkFreeMemory(c->dev, c->probe_mem, NULL);
   vkDestroyPipeline(c->dev, c->comp, NULL);
   vkDestroyPipelineLayout(c->dev, c->comp_layout, NULL);
   vkDestroyDescriptorSetLayout(c->dev, c->comp_set_layout, NULL);
   vkDestroyBuffer(c->dev, c->dst, NULL);
   vkFreeMemory(c->dev, c->dst_mem, NULL);
   vkDestroyPipeline(c->dev, c->gfx, NULL);
   vkDestroyFramebuffer(c->dev, c->fb, NULL);
   vkDestroyRenderPass(c->dev, c->pass, NULL);
   vkDestroyImageView(c->dev, c->view, NULL);
   vkDestroyImage(c->dev, c->image, NULL);
   vkFreeMemory(c->dev, c->image_mem, NULL);
   vkDestroyPipelineLayout(c->dev, c->empty_layout, NULL);
   vkDestroyFence(c->dev, c->fence, NULL);
   vkDestroyCommandPool(c->dev, c->pool, NULL);
   vkDestroyDevice(c->dev, NULL);
   vkDestroyInstance(c->instance, NULL);
}

int main(int argc, char **argv)
{
   long iterations = 1;
   const char *want = NULL;
   int hold = 0;
   for (int i = 1; i < argc; i++) {
      if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
         iterations = strtol(argv[++i], NULL, 10);
      else if (!strcmp(argv[i], "--device") && i + 1 < argc)
         want = argv[++i];
      else if (!strcmp(argv[i], "--hold"))
         hold = 1;
      else {
         fprintf(stderr, "usage: %s [--iterations N] [--device SUBSTRING] [--hold]\n",
                 argv[0]);
         return 2;
      }
   }
   if (iterations < 1)
      iterations = 1;
   setvbuf(stdout, NULL, _IOLBF, 0);

   static struct ctx c; /* the results array is large: not on the stack */
   init_device(&c, want);
   init_pattern(&c);
   init_compute(&c);
   init_probes(&c);
   record(&c);

   const uint32_t pixels = WIDTH * HEIGHT;
   uint32_t render_ok = pixels, compute_ok = COUNT;
   long done = 0;
   double t0 = now_s();
   for (; done < iterations && render_ok == pixels && compute_ok == COUNT; done++) {
      run_once(&c);
      render_ok = check_render(&c);
      compute_ok = check_compute(&c);
   }
   double dt = now_s() - t0;
   printf("render: %u/%u pixels match\n", render_ok, pixels);
   printf("compute: %u/%u values match\n", compute_ok, COUNT);
   if (iterations > 1)
      printf("rate: %.2f iterations/s (%ld in %.3f s)\n", done / dt, done, dt);
   if (hold) {
      printf("holding\n");
      while (getchar() != EOF)
         ;
   }
   destroy(&c);
   int pass = render_ok == pixels && compute_ok == COUNT;
   printf("%s\n", pass ? "PASS" : "FAIL");
   return pass ? 0 : 1;
}
