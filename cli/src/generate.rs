//! `curfew generate man|completions DIR` (hidden): the man pages and shell
//! completions of the package, generated from the clap definition itself
//! (clap_mangen, clap_complete) so they never drift from `--help`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{CommandFactory, Subcommand};
use clap_complete::Shell;

use crate::Outcome;

#[derive(Subcommand, Debug)]
pub enum GenerateCommand {
    /// Man pages: curfew.1 and one page per subcommand (curfew-revoke.1, ...).
    Man {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
    /// Completions for bash (curfew.bash), zsh (_curfew) and fish (curfew.fish).
    Completions {
        /// The directory to write into (created if missing).
        dir: PathBuf,
    },
}

pub fn run(cmd: GenerateCommand) -> Result<Outcome> {
    let mut command = crate::Cli::command();
    match cmd {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            write_pages(&command, "curfew", &dir)?;
        }
        GenerateCommand::Completions { dir } => {
            std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut command, "curfew", &dir)
                    .with_context(|| format!("writing {shell} completions to {}", dir.display()))?;
            }
        }
    }
    Ok(Outcome::Success)
}

/// One page per command, named by its path (`curfew-revoke-user.1`); hidden
/// commands (this one) and clap's `help` subcommands get none.
fn write_pages(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> Result<()> {
    let page = cmd.clone().display_name(name.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut file = std::fs::File::create(&path).with_context(|| format!("{}", path.display()))?;
    clap_mangen::Man::new(page)
        .render(&mut file)
        .with_context(|| format!("{}", path.display()))?;
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
