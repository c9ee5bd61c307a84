//! The zone PIN key exchange as it crosses the wire (issue 14): the switch's key change answer
//! (0810, network code 161) built by the switch's own code, read by the agent's own code and
//! installed through its key store. The version in field 53 is bound to the cryptogram in
//! field 48 by a MAC under a key derived from the zone master key, and the agent's store never
//! goes back to a version older than the newest it held: an 0810 replayed after its key was
//! destroyed installs nothing, and neither does one whose version was edited in transit.

use std::sync::Arc;

use atm_agent::adapters::switch_messages::zone_pin_key_delivery;
use atm_agent::app::pin_keys::PinKeys;
use host_switch::adapters::iso_mapping::to_response;
use host_switch::app::zone_keys::{key_change_reply, ZoneKeys};
use keystore::{
    crypto, Component, Kcv, Kek, KeyName, KeyRef, KeyStore, KeyStoreError, KeyUsage,
    SoftwareKeyStore,
};
use protocols::iso8583::Message;

const KEK: &str = "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F";
const ZMK_COMPONENTS: [&str; 2] = [
    "0123456789ABCDEFFEDCBA9876543210",
    "1F1F1F1F0E0E0E0E1010101001010101",
];

fn zmk_entry() -> (Vec<Component>, Vec<Kcv>) {
    let components: Vec<Component> = ZMK_COMPONENTS
        .iter()
        .map(|c| Component::from_hex(c).unwrap())
        .collect();
    let kcvs = components
        .iter()
        .map(|c| crypto::kcv(c.expose()).unwrap())
        .collect();
    (components, kcvs)
}

struct Zone {
    _dir: tempfile::TempDir,
    switch: ZoneKeys,
    agent: PinKeys,
}

async fn zone() -> Zone {
    let dir = tempfile::tempdir().unwrap();
    let open = |file: &str| {
        let kek = Kek::from_hex(KEK).unwrap();
        Arc::new(SoftwareKeyStore::open(&dir.path().join(file), kek).unwrap())
    };
    let switch_store = open("switch-keys.json");
    let (c, k) = zmk_entry();
    switch_store
        .load_components(&KeyName::zone_master(), KeyUsage::ZoneMaster, &c, &k)
        .unwrap();
    let switch = ZoneKeys::new(switch_store, 0, 0);
    switch.ensure_zpk().await.unwrap();
    let agent = PinKeys::new(open("agent-keys.json"), None);
    let (c, k) = zmk_entry();
    agent.load_zone_master(&c, &k).unwrap();
    Zone {
        _dir: dir,
        switch,
        agent,
    }
}

impl Zone {
    /// What the switch answers to an 0800/161 now.
    fn key_change_answer(&self) -> Message {
        let mut request = Message::new("0800").unwrap();
        request.set_str(70, "161").unwrap();
        request.set_str(11, "000042").unwrap();
        to_response(&request, &key_change_reply(&self.switch.export().unwrap()))
    }

    /// What the agent does with an 0810: read it, hand it to its key store.
    fn receive(&self, answer: &Message) -> Result<u32, KeyStoreError> {
        let delivery = zone_pin_key_delivery(answer).unwrap();
        self.agent.import_zone_pin_key(&delivery).map(|k| k.version)
    }

    fn agent_zpk_version(&self) -> Option<u32> {
        self.agent.zone_pin_key().unwrap().map(|k| k.version)
    }
}

#[tokio::test]
async fn an_0810_replayed_after_its_key_was_destroyed_does_not_reinstall_it() {
    let z = zone().await;
    let old = z.key_change_answer();
    assert_eq!(z.receive(&old).unwrap(), 1);
    // A retry of the same answer is harmless while the key is there.
    assert_eq!(z.receive(&old).unwrap(), 1);

    z.switch.rotate("test").await.unwrap();
    assert_eq!(z.receive(&z.key_change_answer()).unwrap(), 2);
    z.agent.discard(&KeyRef::new(KeyName::zone_pin(), 1));

    let r = z.receive(&old);
    assert!(
        matches!(r, Err(KeyStoreError::VersionNotNewer { newest: 2, .. })),
        "{r:?}"
    );
    assert!(z
        .agent
        .store()
        .info(&KeyRef::new(KeyName::zone_pin(), 1))
        .is_err());
    assert_eq!(z.agent_zpk_version(), Some(2));
}

#[tokio::test]
async fn an_0810_whose_version_was_edited_in_transit_is_refused() {
    let z = zone().await;
    // The switch's version 1, presented as version 9: it would become the agent's current key.
    let mut edited = z.key_change_answer();
    edited.set_str(53, "0000000000000009").unwrap();
    let r = z.receive(&edited);
    assert!(matches!(r, Err(KeyStoreError::DeliveryMac { .. })), "{r:?}");
    assert_eq!(z.agent_zpk_version(), None);

    // A cryptogram moved into another answer (field 48 of version 1 under version 2's 53).
    let v1 = z.key_change_answer();
    z.switch.rotate("test").await.unwrap();
    let mut moved = z.key_change_answer();
    moved.set_str(48, v1.get_str(48).unwrap()).unwrap();
    let r = z.receive(&moved);
    assert!(matches!(r, Err(KeyStoreError::DeliveryMac { .. })), "{r:?}");
    assert_eq!(z.agent_zpk_version(), None);

    // The answer as sent installs.
    assert_eq!(z.receive(&z.key_change_answer()).unwrap(), 2);
}

#[tokio::test]
async fn an_0810_without_the_binding_mac_is_not_read_as_a_key() {
    let z = zone().await;
    let mut unbound = z.key_change_answer();
    // Field 48 as switches before the binding sent it: cryptogram and check value only.
    let body = unbound.get_str(48).unwrap().to_owned();
    unbound.set_str(48, &body[..38]).unwrap();
    assert!(zone_pin_key_delivery(&unbound).is_err());
}
