//! The cards' PIN records on sled: tree `card_pins` in the journal's database, one JSON record per
//! card reference, made durable through the journal's group committer (a wrong-try count is on
//! disk before the decline that depends on it leaves).

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use group_commit::GroupCommitter;
use std::sync::Arc;

use super::sled_journal::{decode, encode, storage, SledDb};
use crate::domain::pin::{CardPinRecord, CardRef, PinData};
use crate::ports::{CardPinStore, JournalError, ProvisionReport};

pub struct SledCardPins {
    cards: sled::Tree,
    commits: Arc<GroupCommitter>,
}

impl SledCardPins {
    pub fn in_db(db: &SledDb) -> Result<Self, JournalError> {
        Ok(Self {
            cards: db.db.open_tree("card_pins").map_err(storage)?,
            commits: db.commits.clone(),
        })
    }

    fn insert(&self, record: &CardPinRecord) -> Result<(), JournalError> {
        self.cards
            .insert(record.card.as_str().as_bytes(), encode(record)?)
            .map_err(storage)?;
        Ok(())
    }

    fn provision_now(
        &self,
        cards: Vec<(CardRef, PinData)>,
    ) -> Result<ProvisionReport, JournalError> {
        let mut report = ProvisionReport {
            cards: cards.len(),
            ..ProvisionReport::default()
        };
        let mut listed: BTreeMap<CardRef, PinData> = cards.into_iter().collect();
        for kv in self.cards.iter() {
            let (k, v) = kv.map_err(storage)?;
            let current: CardPinRecord = decode(&k, &v)?;
            let data = listed.remove(&current.card);
            if data.is_none() && current.data.is_some() {
                report.cleared += 1;
            }
            if data != current.data {
                self.insert(&current.reprovisioned(data))?;
            }
        }
        for (card, data) in listed {
            report.added += 1;
            self.insert(&CardPinRecord::new(card, Some(data)))?;
        }
        Ok(report)
    }
}

impl CardPinStore for SledCardPins {
    fn card(&self, card: &CardRef) -> Result<Option<CardPinRecord>, JournalError> {
        let key = card.as_str().as_bytes();
        match self.cards.get(key).map_err(storage)? {
            Some(v) => decode(key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn save(&self, record: CardPinRecord) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            self.insert(&record)?;
            self.commits.durable().await?;
            Ok(())
        })
    }

    fn provision(
        &self,
        cards: Vec<(CardRef, PinData)>,
    ) -> BoxFuture<'_, Result<ProvisionReport, JournalError>> {
        Box::pin(async move {
            let report = self.provision_now(cards)?;
            self.commits.durable().await?;
            Ok(report)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pin::PinStatus;
    use protocols::types::Pan;

    fn card(pan: &str) -> CardRef {
        CardRef::for_card(&Pan::parse(pan).unwrap())
    }

    #[tokio::test]
    async fn reprovisioning_updates_data_and_keeps_counters_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (card("4761739001010010"), card("4761739001010028"));
        {
            let db = SledDb::open(dir.path()).unwrap();
            let store = SledCardPins::in_db(&db).unwrap();
            let report = store
                .provision(vec![
                    (a.clone(), PinData::visa_pvv(1, "1234").unwrap()),
                    (b.clone(), PinData::ibm3624("7710").unwrap()),
                ])
                .await
                .unwrap();
            assert_eq!((report.cards, report.added, report.cleared), (2, 2, 0));
            let mut rec = store.card(&a).unwrap().unwrap();
            rec.status = PinStatus::Blocked;
            store.save(rec).await.unwrap();
        }
        let db = SledDb::open(dir.path()).unwrap();
        let store = SledCardPins::in_db(&db).unwrap();
        let report = store
            .provision(vec![(a.clone(), PinData::visa_pvv(2, "9999").unwrap())])
            .await
            .unwrap();
        assert_eq!((report.cards, report.added, report.cleared), (1, 0, 1));
        let rec = store.card(&a).unwrap().unwrap();
        assert_eq!(rec.status, PinStatus::Blocked, "counters survive reload");
        assert_eq!(rec.data, Some(PinData::visa_pvv(2, "9999").unwrap()));
        assert_eq!(store.card(&b).unwrap().unwrap().data, None);
        assert_eq!(store.card(&card("4761739001010036")).unwrap(), None);
    }
}
