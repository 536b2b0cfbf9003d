//! Whether output gets colour: the `--color` flag, and what `auto` looks at (a terminal,
//! `NO_COLOR`).

use std::io::IsTerminal;

use clap::ValueEnum;

/// `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether to colour stdout: `always` and `never` are final; `auto` colours a terminal
    /// unless `NO_COLOR` is set (to anything non-empty, as no-color.org says).
    pub fn enabled(self) -> bool {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        self.resolve(std::io::stdout().is_terminal(), no_color)
    }

    fn resolve(self, is_terminal: bool, no_color: bool) -> bool {
        match self {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => is_terminal && !no_color,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ColorWhen;

    #[test]
    fn auto_colours_only_a_terminal_without_no_color() {
        assert!(ColorWhen::Auto.resolve(true, false));
        assert!(!ColorWhen::Auto.resolve(false, false));
        assert!(!ColorWhen::Auto.resolve(true, true));
        assert!(ColorWhen::Always.resolve(false, true));
        assert!(!ColorWhen::Never.resolve(true, false));
    }
}
