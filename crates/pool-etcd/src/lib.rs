//! `ferry-pool-etcd`: the pool's durable state in etcd (work in progress on branch `pool`).
