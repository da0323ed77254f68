//! Text renderings shared by the `usage` and `whatif` reports.

/// A CSV field, quoted when it holds a separator, quote or newline.
fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}

pub fn csv<const N: usize>(headers: &[&str; N], rows: &[[String; N]]) -> String {
    let mut out = headers.join(",");
    for row in rows {
        out.push('\n');
        out.push_str(
            &row.iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    out
}

/// An aligned table: the first `left` columns (names) left-aligned, the rest (figures) right.
pub fn table<const N: usize>(headers: &[&str; N], rows: &[[String; N]], left: usize) -> String {
    let mut widths = headers.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, width))| {
                if i < left {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = line(&headers.map(str::to_owned));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_and_tables_align() {
        let rows = [
            ["a,b".to_owned(), "1".to_owned()],
            ["c".to_owned(), "22".to_owned()],
        ];
        assert_eq!(csv(&["name", "n"], &rows), "name,n\n\"a,b\",1\nc,22");
        assert_eq!(
            table(&["name", "n"], &rows, 1),
            "name   n\na,b    1\nc     22"
        );
    }
}
