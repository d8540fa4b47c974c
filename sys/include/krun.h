/*
 * krunbox-sys: the part of libkrun's C API (1.19.x) that krunbox binds.
 *
 * Declared here from libkrun's exported `krun_*` functions, restricted to
 * what every build of libkrun provides (no blk, net, gpu, input, TEE or
 * Nitro features). bindgen turns this file into src/bindings.rs; see
 * sys/README.md for how to regenerate it.
 *
 * Conventions of the library: every function returns 0 or a positive value
 * on success and a negative errno on failure; contexts are small integers.
 */
#ifndef KRUNBOX_SYS_KRUN_H
#define KRUNBOX_SYS_KRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Log levels for krun_set_log_level and krun_init_log. */
#define KRUN_LOG_LEVEL_OFF 0
#define KRUN_LOG_LEVEL_ERROR 1
#define KRUN_LOG_LEVEL_WARN 2
#define KRUN_LOG_LEVEL_INFO 3
#define KRUN_LOG_LEVEL_DEBUG 4
#define KRUN_LOG_LEVEL_TRACE 5

/* Log target meaning "libkrun's default" (standard error). */
#define KRUN_LOG_TARGET_DEFAULT -1

/* Log styles for krun_init_log. */
#define KRUN_LOG_STYLE_AUTO 0
#define KRUN_LOG_STYLE_ALWAYS 1
#define KRUN_LOG_STYLE_NEVER 2

/* Option for krun_init_log: ignore the RUST_LOG environment variable. */
#define KRUN_LOG_OPTION_NO_ENV 1

/* virtio-fs tag of the root filesystem set by krun_set_root. */
#define KRUN_FS_ROOT_TAG "/dev/root"

/* Features queried with krun_has_feature. */
#define KRUN_FEATURE_NET 0
#define KRUN_FEATURE_BLK 1
#define KRUN_FEATURE_GPU 2
#define KRUN_FEATURE_SND 3
#define KRUN_FEATURE_INPUT 4
#define KRUN_FEATURE_EFI 5
#define KRUN_FEATURE_TEE 6
#define KRUN_FEATURE_AMD_SEV 7
#define KRUN_FEATURE_INTEL_TDX 8
#define KRUN_FEATURE_AWS_NITRO 9
#define KRUN_FEATURE_VIRGL_RESOURCE_MAP2 10
#define KRUN_FEATURE_INIT_BLOB 11

/* TSI features for krun_add_vsock. */
#define KRUN_TSI_HIJACK_INET (1 << 0)
#define KRUN_TSI_HIJACK_UNIX (1 << 1)

/* Logging. */
int32_t krun_set_log_level(uint32_t level);
int32_t krun_init_log(int target_fd, uint32_t level, uint32_t style, uint32_t options);

/* Context lifetime: returns a context id (>= 0) or a negative errno. */
int32_t krun_create_ctx(void);
int32_t krun_free_ctx(uint32_t ctx_id);

/* Machine. */
int32_t krun_set_vm_config(uint32_t ctx_id, uint8_t num_vcpus, uint32_t ram_mib);
int32_t krun_get_max_vcpus(void);
int32_t krun_set_nested_virt(uint32_t ctx_id, bool enabled);
int32_t krun_check_nested_virt(void);
int32_t krun_split_irqchip(uint32_t ctx_id, bool enable);
int32_t krun_has_feature(uint64_t feature);
int32_t krun_set_smbios_oem_strings(uint32_t ctx_id, const char *const oem_strings[]);

/* Filesystems. */
int32_t krun_set_root(uint32_t ctx_id, const char *root_path);
int32_t krun_add_virtiofs(uint32_t ctx_id, const char *c_tag, const char *c_path);
int32_t krun_add_virtiofs2(uint32_t ctx_id, const char *c_tag, const char *c_path,
                           uint64_t shm_size);
int32_t krun_add_virtiofs3(uint32_t ctx_id, const char *c_tag, const char *c_path,
                           uint64_t shm_size, bool read_only);
int32_t krun_fs_add_overlay_file(uint32_t ctx_id, const char *fs_tag, const char *path,
                                 const uint8_t *data, size_t data_len, uint32_t mode,
                                 bool one_shot);
int32_t krun_fs_add_overlay_dir(uint32_t ctx_id, const char *fs_tag, const char *path,
                                uint32_t mode);

/* The workload. */
int32_t krun_set_workdir(uint32_t ctx_id, const char *workdir_path);
int32_t krun_set_exec(uint32_t ctx_id, const char *exec_path, const char *const argv[],
                      const char *const envp[]);
int32_t krun_set_env(uint32_t ctx_id, const char *const envp[]);
int32_t krun_set_rlimits(uint32_t ctx_id, const char *const rlimits[]);
int32_t krun_setuid(uint32_t ctx_id, uid_t uid);
int32_t krun_setgid(uint32_t ctx_id, gid_t gid);
int32_t krun_disable_implicit_init(uint32_t ctx_id);
int32_t krun_get_default_init(const uint8_t **data_out, size_t *len_out);

/* vsock and TSI networking. */
int32_t krun_set_port_map(uint32_t ctx_id, const char *const port_map[]);
int32_t krun_add_vsock_port(uint32_t ctx_id, uint32_t port, const char *c_filepath);
int32_t krun_add_vsock_port2(uint32_t ctx_id, uint32_t port, const char *c_filepath,
                             bool listen);
int32_t krun_disable_implicit_vsock(uint32_t ctx_id);
int32_t krun_add_vsock(uint32_t ctx_id, uint32_t tsi_features);

/* Consoles. */
int32_t krun_set_console_output(uint32_t ctx_id, const char *c_filepath);
int32_t krun_disable_implicit_console(uint32_t ctx_id);
int32_t krun_set_kernel_console(uint32_t ctx_id, const char *console_id);
int32_t krun_add_virtio_console_default(uint32_t ctx_id, int input_fd, int output_fd,
                                        int err_fd);
int32_t krun_add_serial_console_default(uint32_t ctx_id, int input_fd, int output_fd);
int32_t krun_add_virtio_console_multiport(uint32_t ctx_id);
int32_t krun_add_console_port_tty(uint32_t ctx_id, uint32_t console_id, const char *name,
                                  int tty_fd);
int32_t krun_add_console_port_inout(uint32_t ctx_id, uint32_t console_id, const char *name,
                                    int input_fd, int output_fd);

/* Start: takes over the calling process and never returns on success. */
int32_t krun_start_enter(uint32_t ctx_id);

#endif /* KRUNBOX_SYS_KRUN_H */
