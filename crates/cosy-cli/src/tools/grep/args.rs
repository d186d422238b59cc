//! The command line of `cosy grep`, in grep's and ripgrep's conventions.

use std::ffi::OsString;

use clap::{ArgAction, Parser};

/// Search files for lines matching a regular expression (ripgrep's output, grep's flags).
#[derive(Parser, Debug)]
#[command(
    name = "grep",
    disable_help_flag = true,
    about = "Search files recursively for lines matching PATTERN (output as `rg --no-ignore \
             --hidden --no-heading --with-filename --sort path`)."
)]
pub struct Args {
    /// Threads searching (default: the machine's cores).
    #[arg(short = 'j', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// Print the number of matching lines of each file with matches.
    #[arg(short = 'c', long = "count", conflicts_with_all = ["files_with_matches", "files_without_match"])]
    pub count: bool,
    /// Print the names of the files with a match.
    #[arg(
        short = 'l',
        long = "files-with-matches",
        conflicts_with = "files_without_match"
    )]
    pub files_with_matches: bool,
    /// Print the names of the files without a match.
    #[arg(short = 'L', long = "files-without-match")]
    pub files_without_match: bool,
    /// Print line numbers.
    #[arg(short = 'n', long = "line-number")]
    pub line_number: bool,
    /// Print the file name of every match (the default).
    #[arg(short = 'H', long = "with-filename", overrides_with = "no_filename")]
    pub with_filename: bool,
    /// Never print file names.
    #[arg(short = 'h', long = "no-filename", overrides_with = "with_filename")]
    pub no_filename: bool,
    /// PATTERN is a literal string, not a regular expression.
    #[arg(short = 'F', long = "fixed-strings")]
    pub fixed: bool,
    /// Match case-insensitively.
    #[arg(short = 'i', long = "ignore-case")]
    pub ignore_case: bool,
    /// Match only whole words.
    #[arg(short = 'w', long = "word-regexp")]
    pub word: bool,
    /// Select the lines that do not match.
    #[arg(short = 'v', long = "invert-match")]
    pub invert: bool,
    /// A pattern (may be given several times; then every operand is a path).
    #[arg(short = 'e', long = "regexp", value_name = "PATTERN", action = ArgAction::Append, allow_hyphen_values = true)]
    pub patterns: Vec<String>,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// PATTERN (unless -e is given), then the files and directories to search (`-` is
    /// standard input; none: the current directory).
    #[arg(value_name = "PATTERN/PATH", allow_hyphen_values = false)]
    pub operands: Vec<OsString>,
}

/// What to print for each file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The selected lines.
    Lines,
    /// The number of selected lines (files with at least one).
    Count,
    /// The names of files with a selected line.
    FilesWith,
    /// The names of files without one.
    FilesWithout,
}

impl Args {
    /// The output mode the flags ask for.
    pub fn mode(&self) -> Mode {
        if self.count {
            Mode::Count
        } else if self.files_with_matches {
            Mode::FilesWith
        } else if self.files_without_match {
            Mode::FilesWithout
        } else {
            Mode::Lines
        }
    }
}
