//! `/dev/uhid`: a HID device made from user space. The kernel's
//! `struct uhid_event` (linux/uhid.h, packed): a u32 type, then a union
//! whose largest member, UHID_CREATE2, makes it 4376 bytes.

use std::fs::File;
use std::io::{self, Read, Write};

/// `sizeof(struct uhid_event)`.
const EVENT: usize = 4376;

const DESTROY: u32 = 1;
const START: u32 = 2;
const OUTPUT: u32 = 6;
const CREATE2: u32 = 11;
const INPUT2: u32 = 12;

/// BUS_USB: hidapi's hidraw backend lists USB, Bluetooth, I2C and SPI only.
const BUS_USB: u16 = 0x03;

/// The FIDO Alliance's HID report descriptor (CTAP 2.1 §11.2.8.1): usage
/// page 0xF1D0, 64-byte input and output reports, no report ids.
pub const FIDO_DESCRIPTOR: &[u8] = &[
    0x06, 0xd0, 0xf1, // Usage Page (FIDO Alliance)
    0x09, 0x01, // Usage (CTAPHID)
    0xa1, 0x01, // Collection (Application)
    0x09, 0x20, //   Usage (Input Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x81, 0x02, //   Input (Data, Var, Abs)
    0x09, 0x21, //   Usage (Output Report Data)
    0x15, 0x00, //   Logical Minimum (0)
    0x26, 0xff, 0x00, //   Logical Maximum (255)
    0x75, 0x08, //   Report Size (8)
    0x95, 0x40, //   Report Count (64)
    0x91, 0x02, //   Output (Data, Var, Abs)
    0xc0, // End Collection
];

/// What the kernel told the device.
#[derive(Debug)]
pub enum Event {
    /// The HID driver started it (hidraw exists now).
    Start,
    /// An output report written to hidraw (report id byte removed).
    Output(Vec<u8>),
    /// Anything else (open, close, stop, feature requests).
    Other,
}

/// The device's handle: reading and writing are separate `&File` uses, so
/// one thread can block in a read while others write reports.
#[derive(Debug)]
pub struct Uhid {
    file: File,
    /// The UHID_CREATE2 event, sent again at a replug.
    created: Vec<u8>,
}

impl Uhid {
    /// Creates the device (UHID_CREATE2).
    pub fn create(name: &str, vendor: u32, product: u32, descriptor: &[u8]) -> io::Result<Uhid> {
        let file = File::options().read(true).write(true).open("/dev/uhid")?;
        let mut ev = vec![0u8; EVENT];
        ev[..4].copy_from_slice(&CREATE2.to_ne_bytes());
        let n = name.as_bytes();
        let n = &n[..n.len().min(127)];
        ev[4..4 + n.len()].copy_from_slice(n);
        // phys (132..196) and uniq (196..260) stay empty.
        let rd = u16::try_from(descriptor.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "descriptor too long"))?;
        ev[260..262].copy_from_slice(&rd.to_ne_bytes());
        ev[262..264].copy_from_slice(&BUS_USB.to_ne_bytes());
        ev[264..268].copy_from_slice(&vendor.to_ne_bytes());
        ev[268..272].copy_from_slice(&product.to_ne_bytes());
        // version (272..276) and country (276..280) zero.
        ev[280..280 + descriptor.len()].copy_from_slice(descriptor);
        (&file).write_all(&ev)?;
        Ok(Uhid { file, created: ev })
    }

    /// Waits for the next event.
    pub fn read(&self) -> io::Result<Event> {
        let mut ev = vec![0u8; EVENT];
        let n = (&self.file).read(&mut ev)?;
        if n < 4 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short uhid event",
            ));
        }
        let ty = u32::from_ne_bytes([ev[0], ev[1], ev[2], ev[3]]);
        Ok(match ty {
            START => Event::Start,
            OUTPUT => {
                // struct uhid_output_req: data[4096], u16 size, u8 rtype.
                let size = usize::from(u16::from_ne_bytes([ev[4100], ev[4101]])).min(4096);
                let data = &ev[4..4 + size];
                // hidraw passes the report id byte on (0: no numbered reports).
                let data = if size == 65 && data[0] == 0 {
                    &data[1..]
                } else {
                    data
                };
                Event::Output(data.to_vec())
            }
            _ => Event::Other,
        })
    }

    /// Sends one input report (UHID_INPUT2).
    pub fn input(&self, report: &[u8]) -> io::Result<()> {
        let mut ev = vec![0u8; EVENT];
        ev[..4].copy_from_slice(&INPUT2.to_ne_bytes());
        let size = u16::try_from(report.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "report too long"))?;
        ev[4..6].copy_from_slice(&size.to_ne_bytes());
        ev[6..6 + report.len()].copy_from_slice(report);
        (&self.file).write_all(&ev)
    }

    /// Unplugs it (UHID_DESTROY): hidraw goes away, its readers get EIO.
    pub fn destroy(&self) -> io::Result<()> {
        let mut ev = vec![0u8; EVENT];
        ev[..4].copy_from_slice(&DESTROY.to_ne_bytes());
        (&self.file).write_all(&ev)
    }

    /// Unplugs it and plugs it in again (UHID_DESTROY, UHID_CREATE2).
    pub fn replug(&self) -> io::Result<()> {
        self.destroy()?;
        (&self.file).write_all(&self.created)
    }
}
