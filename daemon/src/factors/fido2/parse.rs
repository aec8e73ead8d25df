//! The bytes an authenticator returns, read without trusting them:
//! authenticatorData (CTAP2 §6.1, WebAuthn §6.1) and the COSE public key
//! inside it. A small CBOR reader of its own (definite lengths only,
//! bounded nesting, every length checked against what is left), so the
//! fuzz target runs exactly what a login runs.

/// The user-present flag.
pub const UP: u8 = 0x01;
/// The user-verified flag (PIN or built-in UV).
pub const UV: u8 = 0x04;
/// Attested credential data follows the counter.
pub const AT: u8 = 0x40;
/// Extensions follow.
pub const ED: u8 = 0x80;

/// COSE algorithm ES256 (ECDSA P-256 with SHA-256).
pub const ES256: i64 = -7;
/// COSE algorithm EdDSA (Ed25519).
pub const EDDSA: i64 = -8;

/// Deeper CBOR than this is refused (an extension map holds little).
const MAX_DEPTH: usize = 8;
/// Credential ids longer than this are refused (CTAP2 keys use ≤ 1023).
pub const MAX_CREDENTIAL_ID: usize = 1023;

/// Why bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input ended inside a field.
    #[error("authenticator data: truncated {0}")]
    Truncated(&'static str),
    /// Bytes were left after the last field.
    #[error("authenticator data: {0} trailing bytes")]
    Trailing(usize),
    /// CBOR this reader does not accept (indefinite length, too deep, …).
    #[error("authenticator data: bad CBOR: {0}")]
    Cbor(&'static str),
    /// A COSE key of a kind this daemon does not verify.
    #[error("COSE key: {0}")]
    Key(&'static str),
}

/// A public key of a credential, as its COSE_Key said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoseKey {
    /// ES256: the uncompressed point's coordinates.
    Es256 {
        /// x coordinate.
        x: [u8; 32],
        /// y coordinate.
        y: [u8; 32],
    },
    /// EdDSA over Ed25519: the public key.
    Ed25519 {
        /// The 32-byte public key.
        x: [u8; 32],
    },
}

/// Attested credential data (present at registration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attested {
    /// The authenticator's model.
    pub aaguid: [u8; 16],
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// Its public key.
    pub key: CoseKey,
    /// The key's CBOR bytes as the authenticator wrote them.
    pub key_bytes: Vec<u8>,
}

/// authenticatorData, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthData {
    /// SHA-256 of the RP ID the authenticator signed for.
    pub rp_id_hash: [u8; 32],
    /// The flags byte.
    pub flags: u8,
    /// The signature counter.
    pub sign_count: u32,
    /// Attested credential data, when the AT flag is set.
    pub attested: Option<Attested>,
}

impl AuthData {
    /// Whether the user was present (touched the key).
    pub fn user_present(&self) -> bool {
        self.flags & UP != 0
    }

    /// Whether the user was verified (PIN, fingerprint).
    pub fn user_verified(&self) -> bool {
        self.flags & UV != 0
    }
}

/// Reads authenticatorData; every byte must belong to a field.
pub fn auth_data(bytes: &[u8]) -> Result<AuthData, ParseError> {
    let mut r = Reader { b: bytes, at: 0 };
    let rp_id_hash: [u8; 32] = r.array("rpIdHash")?;
    let [flags] = r.array::<1>("flags")?;
    let sign_count = u32::from_be_bytes(r.array("signCount")?);
    let attested = if flags & AT != 0 {
        let aaguid = r.array("aaguid")?;
        let len = u16::from_be_bytes(r.array("credentialIdLength")?) as usize;
        if len > MAX_CREDENTIAL_ID {
            return Err(ParseError::Key("credential id too long"));
        }
        let credential_id = r.take(len, "credentialId")?.to_vec();
        let start = r.at;
        let key = cose_key_at(&mut r)?;
        Some(Attested {
            aaguid,
            credential_id,
            key,
            key_bytes: bytes[start..r.at].to_vec(),
        })
    } else {
        None
    };
    if flags & ED != 0 {
        // Extensions are a map; none of them changes a decision here.
        if r.b.get(r.at).map(|b| b >> 5) != Some(5) {
            return Err(ParseError::Cbor("extensions are not a map"));
        }
        r.skip(0)?;
    }
    if r.at != bytes.len() {
        return Err(ParseError::Trailing(bytes.len() - r.at));
    }
    Ok(AuthData {
        rp_id_hash,
        flags,
        sign_count,
        attested,
    })
}

/// Reads a COSE_Key that is the whole of `bytes`.
pub fn cose_key(bytes: &[u8]) -> Result<CoseKey, ParseError> {
    let mut r = Reader { b: bytes, at: 0 };
    let key = cose_key_at(&mut r)?;
    if r.at != bytes.len() {
        return Err(ParseError::Trailing(bytes.len() - r.at));
    }
    Ok(key)
}

fn cose_key_at(r: &mut Reader<'_>) -> Result<CoseKey, ParseError> {
    let (major, n) = r.head()?;
    if major != 5 {
        return Err(ParseError::Key("not a map"));
    }
    if n > 16 {
        return Err(ParseError::Key("too many entries"));
    }
    let (mut kty, mut alg, mut crv) = (None, None, None);
    let (mut x, mut y) = (None, None);
    for _ in 0..n {
        let label = r.int()?;
        let slot = match label {
            1 => &mut kty,
            3 => &mut alg,
            -1 => &mut crv,
            -2 => {
                set(&mut x, r.bytes()?)?;
                continue;
            }
            -3 => {
                set(&mut y, r.bytes()?)?;
                continue;
            }
            _ => {
                r.skip(0)?;
                continue;
            }
        };
        if slot.replace(r.int()?).is_some() {
            return Err(ParseError::Key("duplicate label"));
        }
    }
    let coord = |v: Option<&[u8]>| -> Result<[u8; 32], ParseError> {
        v.and_then(|v| v.try_into().ok())
            .ok_or(ParseError::Key("coordinate missing or not 32 bytes"))
    };
    match (kty, alg, crv) {
        (Some(2), Some(ES256), Some(1)) => Ok(CoseKey::Es256 {
            x: coord(x)?,
            y: coord(y)?,
        }),
        (Some(1), Some(EDDSA), Some(6)) if y.is_none() => Ok(CoseKey::Ed25519 { x: coord(x)? }),
        _ => Err(ParseError::Key("not an ES256 or Ed25519 key")),
    }
}

fn set<'b>(slot: &mut Option<&'b [u8]>, v: &'b [u8]) -> Result<(), ParseError> {
    if slot.replace(v).is_some() {
        return Err(ParseError::Key("duplicate label"));
    }
    Ok(())
}

impl CoseKey {
    /// The COSE algorithm.
    pub fn alg(&self) -> i64 {
        match self {
            CoseKey::Es256 { .. } => ES256,
            CoseKey::Ed25519 { .. } => EDDSA,
        }
    }

    /// Its canonical COSE_Key CBOR (what is stored).
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        match self {
            CoseKey::Es256 { x, y } => {
                // {1: 2, 3: -7, -1: 1, -2: x, -3: y}
                out.extend_from_slice(&[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 32]);
                out.extend_from_slice(x);
                out.extend_from_slice(&[0x22, 0x58, 32]);
                out.extend_from_slice(y);
            }
            CoseKey::Ed25519 { x } => {
                // {1: 1, 3: -8, -1: 6, -2: x}
                out.extend_from_slice(&[0xa4, 0x01, 0x01, 0x03, 0x27, 0x20, 0x06, 0x21, 0x58, 32]);
                out.extend_from_slice(x);
            }
        }
        out
    }
}

struct Reader<'b> {
    b: &'b [u8],
    at: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'b [u8], ParseError> {
        let end = self.at.checked_add(n).ok_or(ParseError::Truncated(what))?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or(ParseError::Truncated(what))?;
        self.at = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ParseError> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A CBOR head: major type and argument (definite lengths only).
    fn head(&mut self) -> Result<(u8, u64), ParseError> {
        let [ib] = self.array::<1>("CBOR head")?;
        let major = ib >> 5;
        let info = ib & 0x1f;
        let arg = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.array::<1>("CBOR head")?[0]),
            25 => u64::from(u16::from_be_bytes(self.array("CBOR head")?)),
            26 => u64::from(u32::from_be_bytes(self.array("CBOR head")?)),
            27 => u64::from_be_bytes(self.array("CBOR head")?),
            _ => return Err(ParseError::Cbor("indefinite length or reserved")),
        };
        Ok((major, arg))
    }

    /// An integer (major type 0 or 1) that fits an i64.
    fn int(&mut self) -> Result<i64, ParseError> {
        match self.head()? {
            (0, n) => i64::try_from(n).map_err(|_| ParseError::Cbor("integer too large")),
            (1, n) => i64::try_from(n)
                .map(|n| -1 - n)
                .map_err(|_| ParseError::Cbor("integer too large")),
            _ => Err(ParseError::Cbor("expected an integer")),
        }
    }

    /// A byte string.
    fn bytes(&mut self) -> Result<&'b [u8], ParseError> {
        match self.head()? {
            (2, n) => {
                let n = usize::try_from(n).map_err(|_| ParseError::Truncated("byte string"))?;
                self.take(n, "byte string")
            }
            _ => Err(ParseError::Cbor("expected a byte string")),
        }
    }

    /// Skips one data item.
    fn skip(&mut self, depth: usize) -> Result<(), ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::Cbor("nested too deep"));
        }
        let (major, n) = self.head()?;
        match major {
            0 | 1 | 7 => Ok(()),
            2 | 3 => {
                let n = usize::try_from(n).map_err(|_| ParseError::Truncated("string"))?;
                self.take(n, "string").map(|_| ())
            }
            4 | 5 => {
                let items = if major == 5 { n.saturating_mul(2) } else { n };
                // Each item takes at least one byte: no loop longer than the input.
                if items > (self.b.len() - self.at) as u64 {
                    return Err(ParseError::Truncated("array or map"));
                }
                for _ in 0..items {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            6 => self.skip(depth + 1),
            _ => Err(ParseError::Cbor("unknown major type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es256() -> CoseKey {
        CoseKey::Es256 {
            x: [1; 32],
            y: [2; 32],
        }
    }

    fn with_key(key: &[u8]) -> Vec<u8> {
        let mut b = vec![7u8; 32];
        b.push(UP | AT);
        b.extend_from_slice(&5u32.to_be_bytes());
        b.extend_from_slice(&[9; 16]);
        b.extend_from_slice(&3u16.to_be_bytes());
        b.extend_from_slice(b"cid");
        b.extend_from_slice(key);
        b
    }

    #[test]
    fn cose_keys_round_trip() {
        for k in [es256(), CoseKey::Ed25519 { x: [3; 32] }] {
            assert_eq!(cose_key(&k.to_cbor()), Ok(k));
        }
    }

    #[test]
    fn attested_data_is_read_to_the_last_byte() {
        let a = auth_data(&with_key(&es256().to_cbor())).unwrap();
        assert_eq!(a.sign_count, 5);
        let att = a.attested.unwrap();
        assert_eq!(att.credential_id, b"cid");
        assert_eq!(att.key, es256());
        let mut extra = with_key(&es256().to_cbor());
        extra.push(0);
        assert_eq!(auth_data(&extra), Err(ParseError::Trailing(1)));
    }

    #[test]
    fn an_assertion_is_37_bytes_or_has_extensions() {
        let mut b = vec![0u8; 32];
        b.push(UP);
        b.extend_from_slice(&1u32.to_be_bytes());
        assert!(auth_data(&b).is_ok());
        assert!(matches!(auth_data(&b[..36]), Err(ParseError::Truncated(_))));
        b[32] |= ED;
        assert!(auth_data(&b).is_err());
        b.extend_from_slice(&[0xa1, 0x61, b'a', 0xf5]); // {"a": true}
        assert!(auth_data(&b).is_ok());
    }

    #[test]
    fn rsa_keys_indefinite_lengths_and_deep_nesting_are_refused() {
        assert!(cose_key(&[0xa2, 0x01, 0x03, 0x03, 0x39, 0x01, 0x00]).is_err());
        assert!(cose_key(&[0xbf, 0xff]).is_err());
        let mut deep = vec![0xa1, 0x04];
        deep.extend(std::iter::repeat_n(0x81, 64));
        deep.push(0);
        assert!(cose_key(&deep).is_err());
        // A map claiming 2^32 entries fails at once.
        assert!(cose_key(&[0xba, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
