//! Reads and writes of the pool state in etcd; every placement change is a transaction that
//! compares the cell's epoch (and, for a controller, its leadership) before writing.

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use ferry_pool::{Policy, PoolSnapshot, Power};
use std::collections::BTreeMap;

use crate::layout::{self, CellRecord, ServerRecord};
use crate::StoreError;

/// The pool as etcd holds it at one revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolState {
    pub servers: BTreeMap<String, ServerRecord>,
    pub power: BTreeMap<String, Power>,
    pub drains: Vec<String>,
    pub cells: BTreeMap<String, CellRecord>,
    pub policy: Option<Policy>,
}

/// Proof of leadership for fenced writes: the election key and its creation revision.
#[derive(Clone, Debug, PartialEq)]
pub struct Fence {
    pub key: Vec<u8>,
    pub rev: i64,
}

/// A client of the pool's keys.
#[derive(Clone)]
pub struct PoolStore {
    pub client: Client,
}

fn text(bytes: &[u8]) -> Result<&str, StoreError> {
    std::str::from_utf8(bytes).map_err(|_| StoreError::Corrupt("key or value not UTF-8".into()))
}

impl PoolStore {
    pub async fn connect(endpoints: &[String]) -> Result<PoolStore, StoreError> {
        let client = Client::connect(endpoints, None).await?;
        Ok(PoolStore { client })
    }

    /// Registers (or refreshes) a server under `lease` (0: no lease, the key stays).
    pub async fn register_server(
        &mut self,
        name: &str,
        record: &ServerRecord,
        lease: i64,
    ) -> Result<(), StoreError> {
        check_name(name)?;
        let options = (lease != 0).then(|| PutOptions::new().with_lease(lease));
        self.client
            .put(
                layout::server_key(name),
                serde_json::to_vec(record)?,
                options,
            )
            .await?;
        Ok(())
    }

    /// Creates a cell on `server` at epoch 1 unless it exists; true if created.
    pub async fn create_cell(
        &mut self,
        name: &str,
        server: &str,
        demand_cores: f64,
    ) -> Result<bool, StoreError> {
        self.create_cell_with_radio(name, server, demand_cores, None)
            .await
    }

    /// Creates a cell on `server` with its radio (what moving it through the agents needs)
    /// at epoch 1 unless it exists; true if created.
    pub async fn create_cell_with_radio(
        &mut self,
        name: &str,
        server: &str,
        demand_cores: f64,
        radio: Option<layout::CellRadio>,
    ) -> Result<bool, StoreError> {
        check_name(name)?;
        let record = CellRecord {
            desired: server.into(),
            actual: server.into(),
            epoch: 1,
            demand_cores,
            radio,
        };
        let txn = Txn::new()
            .when([Compare::version(
                layout::epoch_key(name),
                CompareOp::Equal,
                0,
            )])
            .and_then([
                TxnOp::put(layout::epoch_key(name), "1", None),
                TxnOp::put(layout::cell_key(name), serde_json::to_vec(&record)?, None),
            ]);
        Ok(self.client.txn(txn).await?.succeeded())
    }

    /// Updates a cell's measured demand, keeping its placement (CAS on the epoch).
    pub async fn set_demand(&mut self, name: &str, demand_cores: f64) -> Result<bool, StoreError> {
        let Some(mut record) = self.cell(name).await? else {
            return Err(StoreError::NoSuchCell(name.into()));
        };
        let epoch = record.epoch;
        record.demand_cores = demand_cores;
        self.write_cell_at_epoch(name, epoch, epoch, &record, None)
            .await
    }

    pub async fn cell(&mut self, name: &str) -> Result<Option<CellRecord>, StoreError> {
        let resp = self.client.get(layout::cell_key(name), None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(serde_json::from_slice(kv.value())?)),
            None => Ok(None),
        }
    }

    /// Starts a move: if the cell is still at `epoch` on `from` (and the fence, if any, still
    /// holds), desired becomes `to` and the epoch `epoch + 1`. False if someone else changed
    /// the cell first: the move is refused, never done twice.
    pub async fn begin_move(
        &mut self,
        cell: &str,
        epoch: u64,
        from: &str,
        to: &str,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.cell(cell).await? else {
            return Err(StoreError::NoSuchCell(cell.into()));
        };
        if record.epoch != epoch || record.actual != from || record.desired != from {
            return Ok(false);
        }
        record.desired = to.into();
        record.epoch = epoch + 1;
        self.write_cell_at_epoch(cell, epoch, epoch + 1, &record, fence)
            .await
    }

    /// Completes a move: the destination serves. Only at the move's epoch.
    pub async fn finish_move(
        &mut self,
        cell: &str,
        epoch: u64,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.cell(cell).await? else {
            return Err(StoreError::NoSuchCell(cell.into()));
        };
        if record.epoch != epoch {
            return Ok(false);
        }
        record.actual = record.desired.clone();
        self.write_cell_at_epoch(cell, epoch, epoch, &record, fence)
            .await
    }

    /// Ends a move that did not happen: the cell serves at `at` (where the executor found
    /// it), so desired = actual = `at`, at the move's epoch + 1 (so a stale finish of the
    /// failed move is refused). False if the cell changed meanwhile.
    pub async fn abort_move(
        &mut self,
        cell: &str,
        epoch: u64,
        at: &str,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.cell(cell).await? else {
            return Err(StoreError::NoSuchCell(cell.into()));
        };
        if record.epoch != epoch {
            return Ok(false);
        }
        record.desired = at.into();
        record.actual = at.into();
        record.epoch = epoch + 1;
        self.write_cell_at_epoch(cell, epoch, epoch + 1, &record, fence)
            .await
    }

    async fn write_cell_at_epoch(
        &mut self,
        cell: &str,
        epoch: u64,
        new_epoch: u64,
        record: &CellRecord,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        let mut compares = vec![Compare::value(
            layout::epoch_key(cell),
            CompareOp::Equal,
            epoch.to_string(),
        )];
        if let Some(f) = fence {
            compares.push(Compare::create_revision(
                f.key.clone(),
                CompareOp::Equal,
                f.rev,
            ));
        }
        let txn = Txn::new().when(compares).and_then([
            TxnOp::put(layout::epoch_key(cell), new_epoch.to_string(), None),
            TxnOp::put(layout::cell_key(cell), serde_json::to_vec(record)?, None),
        ]);
        Ok(self.client.txn(txn).await?.succeeded())
    }

    /// Writes a server's power state (fenced by leadership when given).
    pub async fn set_power(
        &mut self,
        server: &str,
        power: Power,
        fence: Option<&Fence>,
    ) -> Result<bool, StoreError> {
        let put = TxnOp::put(layout::power_key(server), layout::power_text(power), None);
        let mut txn = Txn::new();
        if let Some(f) = fence {
            txn = txn.when([Compare::create_revision(
                f.key.clone(),
                CompareOp::Equal,
                f.rev,
            )]);
        }
        Ok(self.client.txn(txn.and_then([put])).await?.succeeded())
    }

    /// Writes the controller's snapshot (fenced): what views read.
    pub async fn put_snapshot(
        &mut self,
        snapshot: &PoolSnapshot,
        fence: &Fence,
    ) -> Result<bool, StoreError> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                fence.key.clone(),
                CompareOp::Equal,
                fence.rev,
            )])
            .and_then([TxnOp::put(
                layout::SNAPSHOT,
                serde_json::to_vec(snapshot)?,
                None,
            )]);
        Ok(self.client.txn(txn).await?.succeeded())
    }

    /// The last snapshot a leader wrote.
    pub async fn snapshot(&mut self) -> Result<Option<PoolSnapshot>, StoreError> {
        let resp = self.client.get(layout::SNAPSHOT, None).await?;
        match resp.kvs().first() {
            Some(kv) => Ok(Some(serde_json::from_slice(kv.value())?)),
            None => Ok(None),
        }
    }

    pub async fn request_drain(&mut self, server: &str) -> Result<(), StoreError> {
        check_name(server)?;
        self.client
            .put(layout::drain_key(server), "1", None)
            .await?;
        Ok(())
    }

    pub async fn set_policy(&mut self, policy: Policy) -> Result<(), StoreError> {
        self.client.put(layout::POLICY, policy.name(), None).await?;
        Ok(())
    }

    /// Everything under the pool's root at one revision.
    pub async fn read(&mut self) -> Result<PoolState, StoreError> {
        let resp = self
            .client
            .get(layout::ROOT, Some(GetOptions::new().with_prefix()))
            .await?;
        let mut state = PoolState::default();
        for kv in resp.kvs() {
            let key = text(kv.key())?;
            let value = kv.value();
            if let Some(name) = key.strip_prefix(layout::SERVERS) {
                state
                    .servers
                    .insert(name.into(), serde_json::from_slice(value)?);
            } else if let Some(name) = key.strip_prefix(layout::POWER) {
                state
                    .power
                    .insert(name.into(), serde_json::from_slice(value)?);
            } else if let Some(name) = key.strip_prefix(layout::DRAIN) {
                state.drains.push(name.into());
            } else if let Some(name) = key.strip_prefix(layout::CELLS) {
                state
                    .cells
                    .insert(name.into(), serde_json::from_slice(value)?);
            } else if key == layout::POLICY {
                let p = text(value)?;
                state.policy = Some(
                    Policy::parse(p)
                        .ok_or_else(|| StoreError::Corrupt(format!("unknown policy {p:?}")))?,
                );
            }
        }
        Ok(state)
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if layout::valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::BadName(name.into()))
    }
}
