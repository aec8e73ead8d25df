//! `fido2_auth_data`: the daemon's reader of what a security key returns
//! (`twofold_daemon::factors::fido2::parse`) and the verifier built on it,
//! on arbitrary bytes, as a key (or anything on the USB bus pretending to
//! be one) may send them.

use twofold_daemon::factors::fido2::parse::{self, CoseKey, MAX_CREDENTIAL_ID};
use twofold_daemon::factors::fido2::verify::{self, Expect};

/// Properties: no panic; an accepted authenticatorData is at least 37
/// bytes, and its attested key (if any) re-encodes to CBOR that reads
/// back as the same key, with a credential id of at most 1023 bytes; the
/// same for the input read as a bare COSE key; and no assertion made of
/// these bytes (any split into data and signature) ever verifies for a
/// fixed key nobody holds the private half of.
pub fn fido2_auth_data(data: &[u8]) {
    if let Ok(ad) = parse::auth_data(data) {
        assert!(data.len() >= 37, "authenticatorData shorter than 37 bytes");
        if let Some(att) = &ad.attested {
            assert!(att.credential_id.len() <= MAX_CREDENTIAL_ID);
            round_trip(&att.key);
            assert_eq!(
                parse::cose_key(&att.key_bytes).as_ref(),
                Ok(&att.key),
                "the attested key's own bytes read differently"
            );
        }
    }
    if let Ok(k) = parse::cose_key(data) {
        round_trip(&k);
    }
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let (sig, ad) = data.split_at(split);
    let key = CoseKey::Ed25519 {
        // The Ed25519 base point's encoding: a valid key with no known
        // private half that signs for it here.
        x: [
            0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
            0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
            0x66, 0x66, 0x66, 0x66,
        ],
    };
    let e = Expect {
        rp_id: "pam://fuzz",
        key: &key,
        counter: None,
        uv: false,
        client_data_hash: &[0; 32],
    };
    assert!(
        verify::assertion(&e, ad, sig).is_err(),
        "arbitrary bytes verified"
    );
}

fn round_trip(k: &CoseKey) {
    assert_eq!(
        parse::cose_key(&k.to_cbor()).as_ref(),
        Ok(k),
        "a key does not survive its own encoding"
    );
}
