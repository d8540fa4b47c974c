//! The bound constants and types match libkrun 1.19's ABI, and the real
//! library answers through them (no VM is booted).

use krunbox_sys as sys;

#[test]
fn constants_have_libkrun_values() {
    assert_eq!(sys::KRUN_LOG_LEVEL_OFF, 0);
    assert_eq!(sys::KRUN_LOG_LEVEL_TRACE, 5);
    assert_eq!(sys::KRUN_LOG_TARGET_DEFAULT, -1);
    assert_eq!(sys::KRUN_LOG_OPTION_NO_ENV, 1);
    assert_eq!(sys::KRUN_FEATURE_NET, 0);
    assert_eq!(sys::KRUN_FEATURE_BLK, 1);
    assert_eq!(sys::KRUN_FEATURE_INIT_BLOB, 11);
    assert_eq!(sys::KRUN_TSI_HIJACK_INET, 1);
    assert_eq!(sys::KRUN_TSI_HIJACK_UNIX, 2);
    assert_eq!(sys::KRUN_FS_ROOT_TAG, b"/dev/root\0");
}

#[test]
fn c_types_have_platform_layout() {
    assert_eq!(
        std::mem::size_of::<sys::uid_t>(),
        std::mem::size_of::<libc::uid_t>()
    );
    assert_eq!(
        std::mem::size_of::<sys::gid_t>(),
        std::mem::size_of::<libc::gid_t>()
    );
}

#[test]
fn context_is_created_configured_and_freed() {
    // SAFETY: no arguments; returns an id or a negative errno.
    let ctx = unsafe { sys::krun_create_ctx() };
    assert!(ctx >= 0, "krun_create_ctx returned {ctx}");
    let ctx = ctx as u32;
    // SAFETY: `ctx` is a live context; plain integers.
    assert_eq!(unsafe { sys::krun_set_vm_config(ctx, 1, 256) }, 0);
    // SAFETY: `ctx` is live and freed exactly once.
    assert_eq!(unsafe { sys::krun_free_ctx(ctx) }, 0);
    // SAFETY: freeing an id twice is answered with an errno, not UB.
    assert_eq!(unsafe { sys::krun_free_ctx(ctx) }, -libc::ENOENT);
}

#[test]
fn bundled_build_reports_init_blob_feature() {
    // SAFETY: a pure query.
    let init_blob = unsafe { sys::krun_has_feature(sys::KRUN_FEATURE_INIT_BLOB as u64) };
    if sys::BUNDLED {
        assert_eq!(init_blob, 1, "the bundled libkrun is built with init-blob");
        assert_eq!(sys::LIBKRUN_VERSION, "1.19.7");
    } else {
        assert!(init_blob >= 0);
    }
}

#[test]
fn default_init_is_served_from_memory() {
    let mut data: *const u8 = std::ptr::null();
    let mut len: usize = 0;
    // SAFETY: both out-pointers are valid for writes.
    let ret = unsafe { sys::krun_get_default_init(&mut data, &mut len) };
    if sys::BUNDLED {
        assert_eq!(ret, 0);
        assert!(!data.is_null() && len > 0);
    }
}
