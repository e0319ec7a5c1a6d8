//! The module's arguments, as written after the module path in a PAM stack:
//! `policy=FILE`, `debug`, `no_banner`, `tmout` (and `no_tmout`, which is
//! the default now and accepted for old stacks).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use curfew_policy::policy::DEFAULT_POLICY_PATH;

/// The parsed arguments of one stack line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    /// `policy=FILE`: the policy to enforce (default `/etc/curfew/policy.yaml`).
    pub policy: PathBuf,
    /// `debug`: log every step at LOG_DEBUG.
    pub debug: bool,
    /// `no_banner`: never show the banner (another module or the
    /// application shows it).
    pub no_banner: bool,
    /// `no_tmout`: do not export `TMOUT`. The default since issue 13;
    /// accepted so that existing stacks keep working, and it wins over
    /// `tmout`.
    pub no_tmout: bool,
    /// `tmout`: export `TMOUT` = `inactivity` (the shell's own idle logout),
    /// for hosts where no enforcer runs. Off by default: bash's TMOUT waits
    /// for a whole line and ignores output, so it contradicts the
    /// enforcer's warning ("press Enter at the prompt", "a running job keeps it").
    pub tmout: bool,
    /// Arguments that were not understood; each is logged, none is fatal
    /// (the usual behaviour of Linux-PAM modules).
    pub unknown: Vec<String>,
    /// A `policy=` that names a relative path: refused, because the module's
    /// working directory is the application's.
    pub relative_policy: bool,
}

impl Default for ModuleArgs {
    fn default() -> Self {
        ModuleArgs {
            policy: PathBuf::from(DEFAULT_POLICY_PATH),
            debug: false,
            no_banner: false,
            no_tmout: false,
            tmout: false,
            unknown: Vec::new(),
            relative_policy: false,
        }
    }
}

impl ModuleArgs {
    /// Parses the arguments in stack order; a later `policy=` wins.
    pub fn parse<I, S>(args: I) -> ModuleArgs
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut parsed = ModuleArgs::default();
        for arg in args {
            let arg = arg.as_ref();
            match arg {
                "debug" => parsed.debug = true,
                "no_banner" => parsed.no_banner = true,
                "no_tmout" => parsed.no_tmout = true,
                "tmout" => parsed.tmout = true,
                _ => match arg.strip_prefix("policy=") {
                    Some(path) if !path.is_empty() => {
                        parsed.policy = PathBuf::from(path);
                        parsed.relative_policy = !path.starts_with('/');
                    }
                    _ => parsed.unknown.push(arg.to_owned()),
                },
            }
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let a = ModuleArgs::parse(Vec::<String>::new());
        assert_eq!(a.policy, PathBuf::from("/etc/curfew/policy.yaml"));
        assert!(!a.debug && !a.no_banner && !a.no_tmout && !a.tmout && !a.relative_policy);
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn every_argument() {
        let a = ModuleArgs::parse([
            "policy=/srv/curfew/p.yaml",
            "debug",
            "no_banner",
            "no_tmout",
            "tmout",
        ]);
        assert_eq!(a.policy, PathBuf::from("/srv/curfew/p.yaml"));
        assert!(a.debug && a.no_banner && a.no_tmout && a.tmout);
        assert!(a.unknown.is_empty());
    }

    #[test]
    fn unknown_and_empty_arguments_are_kept_for_the_log() {
        let a = ModuleArgs::parse(["verbose", "policy=", "nobanner"]);
        assert_eq!(a.unknown, ["verbose", "policy=", "nobanner"]);
        assert_eq!(a.policy, PathBuf::from(DEFAULT_POLICY_PATH));
    }

    #[test]
    fn relative_policy_is_flagged() {
        let a = ModuleArgs::parse(["policy=policy.yaml"]);
        assert!(a.relative_policy);
        let a = ModuleArgs::parse(["policy=policy.yaml", "policy=/etc/p.yaml"]);
        assert!(!a.relative_policy);
        assert_eq!(a.policy, PathBuf::from("/etc/p.yaml"));
    }
}
