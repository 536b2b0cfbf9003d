//! Tables as kubectl prints them: no borders, and no blanks after a row's last word. A
//! padded last column would put the width of the longest message (an error of 200
//! characters) after every other row, which a pipe or a terminal narrower than it shows.

use comfy_table::Table;

/// The table's lines, each without trailing blanks, the last one without its newline.
pub fn text(table: &Table) -> String {
    table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use comfy_table::{ContentArrangement, presets};

    use super::*;

    #[test]
    fn no_row_ends_in_blanks_when_another_row_has_a_long_last_cell() {
        let mut table = Table::new();
        table
            .load_style(presets::NOTHING)
            .set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(["OBJECT", "RESULT"]);
        table.add_row(["a", "ok"]);
        table.add_row(["b", &format!("error: {}", "x".repeat(200))]);
        let text = text(&table);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l == &l.trim_end()), "{text:?}");
        assert!(lines[1].ends_with("ok"), "{text:?}");
        // The columns still line up.
        assert_eq!(lines[0].find("RESULT"), lines[1].find("ok"));
    }
}
