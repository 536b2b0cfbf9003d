use clap::ValueEnum;
use gitops::output::ColorChoice;

/// `--color auto|always|never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ColorWhen {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorWhen {
    /// Whether stdout gets colour (`auto`: a terminal without `NO_COLOR`).
    pub fn enabled(self) -> bool {
        let choice = match self {
            ColorWhen::Auto => ColorChoice::Auto,
            ColorWhen::Always => ColorChoice::Always,
            ColorWhen::Never => ColorChoice::Never,
        };
        choice.enabled()
    }
}
