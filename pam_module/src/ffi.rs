//! The C boundary: libpam's entry points and the [`PamHandler`] over a real
//! `pam_handle_t`. The only module of the crate with `unsafe`.
//!
//! pam-bindings generates the `pam_sm_*` symbols, validates argc/argv and
//! catches panics (answering `PAM_ABORT`); it also wraps items, the
//! conversation and `pam_set_data`. What it lacks (`pam_putenv`,
//! `pam_getenv`, `pam_syslog`) is declared here.

use std::ffi::{c_char, c_int, CStr, CString};

use pam::constants::{PamFlag, PamResultCode, PAM_ERROR_MSG, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{RHost, Service, Tty};
use pam::module::{PamHandle, PamHooks};

use crate::args::ModuleArgs;
use crate::code::PamCode;
use crate::handler::{
    Item, LogLevel, MessageStyle, PamHandler, RUNTIME_MAX_SEC_DATA, SESSION_ID_DATA,
};
use crate::hooks::{self, Call};
use crate::system::Host;

#[link(name = "pam")]
extern "C" {
    fn pam_putenv(pamh: *mut PamHandle, name_value: *const c_char) -> c_int;
    fn pam_getenv(pamh: *mut PamHandle, name: *const c_char) -> *const c_char;
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    fn pam_get_data(
        pamh: *const PamHandle,
        module_data_name: *const c_char,
        data: *mut *const std::ffi::c_void,
    ) -> c_int;
}

/// The module, as pam-bindings sees it.
struct PamCurfew;

pam::pam_hooks!(PamCurfew);

/// Which hook libpam called.
#[derive(Clone, Copy)]
enum Hook {
    AcctMgmt,
    OpenSession,
    CloseSession,
}

impl PamHooks for PamCurfew {
    fn acct_mgmt(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        dispatch(Hook::AcctMgmt, pamh, &args, flags)
    }

    fn sm_open_session(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        dispatch(Hook::OpenSession, pamh, &args, flags)
    }

    fn sm_close_session(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        dispatch(Hook::CloseSession, pamh, &args, flags)
    }
}

/// Gathers the call into plain values, runs the hook, and maps its answer
/// to libpam's code: the one place where that happens.
fn dispatch(hook: Hook, pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let args = ModuleArgs::parse(args.iter().map(|a| a.to_string_lossy()));
    let call = Call {
        args: &args,
        silent: flags & PAM_SILENT != 0,
    };
    let mut pam = LibPam { pamh };
    // pam-bindings catches panics too (answering PAM_ABORT); catching here
    // as well lets us log it and answer like any other internal failure.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match hook {
        Hook::AcctMgmt => hooks::acct_mgmt(&mut pam, &Host, call),
        Hook::OpenSession => hooks::open_session(&mut pam, &Host, call),
        Hook::CloseSession => hooks::close_session(&mut pam, &Host, call),
    }));
    let code = match outcome {
        Ok(code) => code,
        Err(payload) => {
            // Dropping a panic payload can itself panic: forget it.
            std::mem::forget(payload);
            pam.log(
                LogLevel::Err,
                "internal error (a bug in pam_curfew); refusing",
            );
            PamCode::SystemErr
        }
    };
    to_pam(code)
}

/// Our code as pam-bindings' enum; a code it does not know becomes
/// `PAM_SYSTEM_ERR` (we never produce one).
fn to_pam(code: PamCode) -> PamResultCode {
    PamResultCode::try_from(code.as_int()).unwrap_or(PamResultCode::PAM_SYSTEM_ERR)
}

fn from_pam(code: PamResultCode) -> PamCode {
    PamCode::from_int(code as c_int)
}

/// A C string for libpam; interior NUL bytes (which libpam could not see
/// past anyway) are dropped rather than failing the call.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// `systemd.runtime_max_sec` as pam_systemd reads it: a NUL-terminated
/// decimal string at the data pointer. A fixed array keeps the digits at
/// the start of the allocation, so pam-bindings' `Box<T>` can carry it and
/// free it in its cleanup. 24 bytes hold any u64 (20 digits) and the NUL.
type RuntimeMaxSec = [u8; 24];

fn runtime_max_sec(seconds: u64) -> RuntimeMaxSec {
    let mut buf = [0u8; 24];
    let digits = seconds.to_string();
    for (slot, b) in buf.iter_mut().zip(digits.bytes()) {
        *slot = b;
    }
    buf
}

/// A [`PamHandler`] over the handle libpam passed to a hook.
struct LibPam<'a> {
    pamh: &'a mut PamHandle,
}

impl LibPam<'_> {
    fn string_item<'i, T>(&'i self) -> Result<Option<String>, PamCode>
    where
        T: pam::items::Item<'i> + std::ops::Deref<Target = &'i CStr>,
    {
        self.pamh
            .get_item::<T>()
            .map(|item| item.map(|v| v.to_string_lossy().into_owned()))
            .map_err(from_pam)
    }
}

impl PamHandler for LibPam<'_> {
    fn user(&mut self) -> Result<String, PamCode> {
        self.pamh.get_user(None).map_err(from_pam)
    }

    fn item(&mut self, item: Item) -> Result<Option<String>, PamCode> {
        match item {
            Item::Service => self.string_item::<Service>(),
            Item::Tty => self.string_item::<Tty>(),
            Item::RHost => self.string_item::<RHost>(),
        }
    }

    fn message(&mut self, style: MessageStyle, text: &str) -> Result<(), PamCode> {
        let conv = self
            .pamh
            .get_item::<Conv>()
            .map_err(from_pam)?
            .ok_or(PamCode::ConvErr)?;
        let style = match style {
            MessageStyle::TextInfo => PAM_TEXT_INFO,
            MessageStyle::ErrorMsg => PAM_ERROR_MSG,
        };
        conv.send(style, &text.replace('\0', ""))
            .map(|_| ())
            .map_err(from_pam)
    }

    fn log(&mut self, level: LogLevel, text: &str) {
        let priority = match level {
            LogLevel::Err => libc::LOG_ERR,
            LogLevel::Warning => libc::LOG_WARNING,
            LogLevel::Notice => libc::LOG_NOTICE,
            LogLevel::Info => libc::LOG_INFO,
            LogLevel::Debug => libc::LOG_DEBUG,
        };
        let msg = c_string(text);
        // SAFETY: `self.pamh` is the live handle libpam passed to this hook;
        // the format is a constant with exactly one `%s`, matched by one
        // NUL-terminated string that outlives the call. pam_syslog adds the
        // `pam_curfew(SERVICE:TYPE): ` prefix and logs to LOG_AUTHPRIV.
        unsafe {
            pam_syslog(
                std::ptr::from_ref::<PamHandle>(self.pamh),
                priority,
                c"%s".as_ptr(),
                msg.as_ptr(),
            );
        }
    }

    fn set_runtime_max_sec(&mut self, seconds: u64) -> Result<(), PamCode> {
        self.pamh
            .set_data::<RuntimeMaxSec>(RUNTIME_MAX_SEC_DATA, Box::new(runtime_max_sec(seconds)))
            .map_err(from_pam)
    }

    fn runtime_max_sec(&mut self) -> Option<String> {
        let name = c_string(RUNTIME_MAX_SEC_DATA);
        let mut data: *const std::ffi::c_void = std::ptr::null();
        // SAFETY: `self.pamh` is the live handle of this hook; `name` is a
        // NUL-terminated string that outlives the call; `data` is a valid
        // out-pointer. libpam only reads the name and writes the pointer.
        let rc = unsafe {
            pam_get_data(
                std::ptr::from_ref::<PamHandle>(self.pamh),
                name.as_ptr(),
                &raw mut data,
            )
        };
        if PamCode::from_int(rc) != PamCode::Success || data.is_null() {
            return None;
        }
        // SAFETY: pam_systemd reads this data name as a NUL-terminated
        // string (pam_systemd.c, get_seconds_data), so every module that
        // sets it, this one included (`runtime_max_sec` above), stores one;
        // libpam keeps it alive for the handle's lifetime, beyond this call.
        let text = unsafe { CStr::from_ptr(data.cast::<c_char>()) };
        text.to_str().ok().map(str::to_owned)
    }

    fn set_session_id(&mut self, id: &str) -> Result<(), PamCode> {
        self.pamh
            .set_data::<String>(SESSION_ID_DATA, Box::new(id.to_owned()))
            .map_err(from_pam)
    }

    fn session_id(&mut self) -> Option<String> {
        // SAFETY: only this module stores data under SESSION_ID_DATA (the
        // name is ours), and it always stores a `String` (set_session_id).
        let id = unsafe { self.pamh.get_data::<String>(SESSION_ID_DATA) };
        id.ok().cloned()
    }

    fn putenv(&mut self, name: &str, value: &str) -> Result<(), PamCode> {
        let pair = c_string(&format!("{name}={value}"));
        // SAFETY: `self.pamh` is the live handle of this hook; `pair` is a
        // NUL-terminated string that outlives the call, and pam_putenv
        // copies it into the PAM environment.
        let rc = unsafe { pam_putenv(std::ptr::from_mut::<PamHandle>(self.pamh), pair.as_ptr()) };
        match PamCode::from_int(rc) {
            PamCode::Success => Ok(()),
            code => Err(code),
        }
    }

    fn getenv(&mut self, name: &str) -> Option<String> {
        let name = c_string(name);
        // SAFETY: `self.pamh` is the live handle of this hook; `name` is a
        // NUL-terminated string that outlives the call.
        let value =
            unsafe { pam_getenv(std::ptr::from_mut::<PamHandle>(self.pamh), name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: a non-null result points into the PAM environment, a
        // NUL-terminated string that stays put until the environment
        // changes; it is copied before this function returns.
        let value = unsafe { CStr::from_ptr(value) };
        Some(value.to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_agree_with_pam_bindings() {
        for (ours, theirs) in [
            (PamCode::Success, PamResultCode::PAM_SUCCESS),
            (PamCode::ServiceErr, PamResultCode::PAM_SERVICE_ERR),
            (PamCode::SystemErr, PamResultCode::PAM_SYSTEM_ERR),
            (PamCode::BufErr, PamResultCode::PAM_BUF_ERR),
            (PamCode::PermDenied, PamResultCode::PAM_PERM_DENIED),
            (PamCode::UserUnknown, PamResultCode::PAM_USER_UNKNOWN),
            (PamCode::SessionErr, PamResultCode::PAM_SESSION_ERR),
            (PamCode::NoModuleData, PamResultCode::PAM_NO_MODULE_DATA),
            (PamCode::ConvErr, PamResultCode::PAM_CONV_ERR),
            (PamCode::Ignore, PamResultCode::PAM_IGNORE),
            (PamCode::Abort, PamResultCode::PAM_ABORT),
            (PamCode::BadItem, PamResultCode::PAM_BAD_ITEM),
        ] {
            assert_eq!(to_pam(ours), theirs);
            assert_eq!(from_pam(theirs), ours);
        }
        assert_eq!(to_pam(PamCode::Other(9999)), PamResultCode::PAM_SYSTEM_ERR);
    }

    #[test]
    fn runtime_max_sec_is_a_c_string() {
        let buf = runtime_max_sec(43_200);
        let s = CStr::from_bytes_until_nul(&buf).unwrap();
        assert_eq!(s.to_str().unwrap(), "43200");
        let buf = runtime_max_sec(u64::MAX);
        let s = CStr::from_bytes_until_nul(&buf).unwrap();
        assert_eq!(s.to_str().unwrap(), u64::MAX.to_string());
    }

    #[test]
    fn c_strings_lose_nul_bytes() {
        assert_eq!(c_string("a\0b").to_str().unwrap(), "ab");
    }
}
