//! QR codes drawn in the terminal with Unicode half blocks, alike in the CLI and in twofoldd.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules added around the code; scanners need a margin to find it.
pub const QUIET_ZONE: usize = 2;

/// Why a QR code could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw a QR code: {0}")]
pub struct QrError(String);

/// Renders `data` as a QR code, two module rows per text line.
///
/// Light modules are drawn as filled blocks and dark ones as blanks, because
/// most terminals are light text on a dark background: on such a terminal the
/// code appears dark-on-light, as scanners expect. Every line ends in `\n`.
pub fn render(data: &str) -> Result<String, QrError> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M)
        .map_err(|e| QrError(e.to_string()))?;
    let width = code.width();
    let colors = code.to_colors();
    let full = width + 2 * QUIET_ZONE;
    let light = |x: usize, y: usize| -> bool {
        if x < QUIET_ZONE || y < QUIET_ZONE || x >= width + QUIET_ZONE || y >= width + QUIET_ZONE {
            return true;
        }
        colors[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)] == Color::Light
    };
    let mut out = String::with_capacity((full + 1) * full.div_ceil(2) * 3);
    for y in (0..full).step_by(2) {
        for x in 0..full {
            let top = light(x, y);
            // An odd row count leaves the last line's lower half outside the
            // code; drawing it blank keeps the margin below from doubling.
            let bottom = y + 1 < full && light(x, y + 1);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URI: &str = "otpauth://totp/twofold:alice?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=twofold&algorithm=SHA1&digits=6&period=30";

    /// Reads the drawing back into a grid of light (true) modules.
    fn parse(drawn: &str) -> Vec<Vec<bool>> {
        let mut rows = Vec::new();
        for line in drawn.lines() {
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected character {other:?}"),
                };
                top.push(t);
                bottom.push(b);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    #[test]
    fn only_half_blocks_and_square() {
        let drawn = render(URI).unwrap();
        assert!(drawn
            .chars()
            .all(|c| matches!(c, '█' | '▀' | '▄' | ' ' | '\n')));
        let lines: Vec<&str> = drawn.lines().collect();
        let cols = lines[0].chars().count();
        assert!(cols > 2 * QUIET_ZONE + 20, "{cols} columns");
        assert!(lines.iter().all(|l| l.chars().count() == cols));
        assert_eq!(lines.len(), cols.div_ceil(2));
    }

    #[test]
    fn drawing_decodes_back_to_the_uri() {
        let grid = parse(&render(URI).unwrap());
        let n = grid[0].len();
        // Scale each module to 4x4 pixels; dark modules are dark pixels.
        let scale = 4;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(n * scale, n * scale, |x, y| {
            if grid[y / scale][x / scale] {
                255
            } else {
                0
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "exactly one QR code found");
        let (_meta, content) = grids[0].decode().unwrap();
        assert_eq!(content, URI);
    }

    #[test]
    fn too_much_data_is_an_error_not_a_panic() {
        let huge = "x".repeat(8000);
        assert!(render(&huge).is_err());
    }
}
