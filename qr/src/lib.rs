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
    render_with(data, false)
}

/// Like [`render`]; with `invert`, the dark modules are the drawn blocks:
/// for terminals that draw dark text on a light background, where the
/// default drawing comes out as a negative that many scanners refuse.
pub fn render_with(data: &str, invert: bool) -> Result<String, QrError> {
    // Level L: a screen is not a worn sticker, and the smaller code keeps a
    // usual otpauth:// URI (about 115 bytes) at 23 lines, so it and a prompt
    // fit an 80x24 terminal.
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::L)
        .map_err(|e| QrError(e.to_string()))?;
    let width = code.width();
    let colors = code.to_colors();
    let full = width + 2 * QUIET_ZONE;
    let light = |x: usize, y: usize| -> bool {
        let is_light = if x < QUIET_ZONE
            || y < QUIET_ZONE
            || x >= width + QUIET_ZONE
            || y >= width + QUIET_ZONE
        {
            true
        } else {
            colors[(y - QUIET_ZONE) * width + (x - QUIET_ZONE)] == Color::Light
        };
        is_light != invert
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

    /// Inverted, the drawn blocks are the dark modules: on a light
    /// background terminal (blocks in dark ink) it reads dark-on-light.
    #[test]
    fn an_inverted_drawing_is_the_negative_and_decodes_as_dark_ink() {
        let plain = parse(&render(URI).unwrap());
        let inverted = parse(&render_with(URI, true).unwrap());
        assert_eq!(plain.len(), inverted.len());
        // Every module flips (the half row padding an odd height does not).
        let n = plain[0].len();
        for (a, b) in plain.iter().zip(&inverted).take(n) {
            for (x, y) in a.iter().zip(b) {
                assert_ne!(x, y);
            }
        }
        let scale = 4;
        // Blocks drawn in dark ink on white: a drawn block is a dark pixel.
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(n * scale, n * scale, |x, y| {
            if inverted[y / scale][x / scale] {
                0
            } else {
                255
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "exactly one QR code found");
        assert_eq!(grids[0].decode().unwrap().1, URI);
    }

    #[test]
    fn too_much_data_is_an_error_not_a_panic() {
        let huge = "x".repeat(8000);
        assert!(render(&huge).is_err());
    }
}
