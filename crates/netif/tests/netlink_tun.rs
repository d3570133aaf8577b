//! Netlink address moves and a real TUN device answering a real `ping`, inside a private
//! network namespace. Needs root; skipped loudly otherwise.

use ferry_netif::{enter_netns, Ipv4Cidr, Netlink, Tun};
use std::net::Ipv4Addr;
use std::process::Command;

fn root_or_skip(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    eprintln!("==============================================================");
    eprintln!("SKIPPED (needs root): {test}");
    eprintln!("==============================================================");
    false
}

struct Ns(String);
impl Ns {
    fn new(tag: &str) -> Ns {
        let name = format!("ftnl{}{}", tag, std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        assert!(Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success());
        Ns(name)
    }
    fn ip(&self, args: &[&str]) {
        let ok = Command::new("ip")
            .args(["-n", &self.0])
            .args(args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip -n {} {:?}", self.0, args);
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn eth3_address_flip_through_netlink() {
    if !root_or_skip("eth3_address_flip_through_netlink") {
        return;
    }
    let ns = Ns::new("a");
    ns.ip(&[
        "link", "add", "eth3", "type", "veth", "peer", "name", "peer3",
    ]);
    let name = ns.0.clone();
    std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let nl = Netlink::new().unwrap();
        nl.set_up("eth3").unwrap();
        let parked: Ipv4Cidr = "192.168.20.2/24".parse().unwrap();
        let live: Ipv4Cidr = "192.168.10.1/24".parse().unwrap();
        nl.add_ipv4("eth3", parked).unwrap();
        nl.add_ipv4("eth3", parked).unwrap(); // idempotent
        assert_eq!(nl.ipv4_addrs("eth3").unwrap(), vec![parked]);
        nl.move_ipv4("eth3", parked.addr, live).unwrap();
        assert_eq!(nl.ipv4_addrs("eth3").unwrap(), vec![live]);
        assert!(nl.has_ipv4("eth3", Ipv4Addr::new(192, 168, 10, 1)).unwrap());
        assert!(!nl.del_ipv4("eth3", parked.addr).unwrap(), "was not there");
        assert!(nl.del_ipv4("eth3", live.addr).unwrap());
        assert!(nl.ipv4_addrs("eth3").unwrap().is_empty());
        assert!(matches!(
            nl.add_ipv4("nope0", live),
            Err(ferry_netif::NetifError::NoSuchInterface(_))
        ));
    })
    .join()
    .unwrap();
}

fn csum(data: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[test]
fn tun_device_carries_a_real_ping() {
    if !root_or_skip("tun_device_carries_a_real_ping") {
        return;
    }
    let ns = Ns::new("t");
    let name = ns.0.clone();
    let tun = std::thread::spawn(move || {
        enter_netns(&name).unwrap();
        let tun = Tun::create("tunf", "192.168.40.9/24".parse().unwrap(), 1400).unwrap();
        let nl = Netlink::new().unwrap();
        assert!(nl.has_ipv4("tunf", Ipv4Addr::new(192, 168, 40, 9)).unwrap());
        tun
    })
    .join()
    .unwrap();
    // The far end "192.168.40.8" is us, answering through the TUN fd.
    let mut ping = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.0,
            "ping",
            "-c",
            "1",
            "-W",
            "3",
            "192.168.40.8",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 2048];
    let pkt = loop {
        let n = tun.recv(&mut buf).unwrap();
        let p = &buf[..n];
        // IPv4, ICMP, echo request (IPv6 router solicitations etc. may come first)
        if n >= 28 && p[0] >> 4 == 4 && p[9] == 1 && p[(p[0] as usize & 15) * 4] == 8 {
            break p.to_vec();
        }
    };
    assert_eq!(&pkt[16..20], &[192, 168, 40, 8]);
    assert_eq!(&pkt[12..16], &[192, 168, 40, 9]);
    let ihl = (pkt[0] as usize & 15) * 4;
    let mut reply = pkt.clone();
    reply[12..16].copy_from_slice(&pkt[16..20]);
    reply[16..20].copy_from_slice(&pkt[12..16]);
    reply[10] = 0;
    reply[11] = 0;
    let c = csum(&reply[..ihl]);
    reply[10..12].copy_from_slice(&c.to_be_bytes());
    reply[ihl] = 0; // echo reply
    reply[ihl + 2] = 0;
    reply[ihl + 3] = 0;
    let c = csum(&reply[ihl..]);
    reply[ihl + 2..ihl + 4].copy_from_slice(&c.to_be_bytes());
    tun.send(&reply).unwrap();
    assert!(
        ping.wait().unwrap().success(),
        "ping did not get our reply through the TUN"
    );
}
