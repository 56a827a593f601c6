//! "Stopped" is seen, not inferred. A node that does not answer on its info port may be hung,
//! cut off by a security group, or still shutting down (flushing its write buffers); detaching
//! or swapping its volumes then would pull storage from under a running `asd`. A node counts as
//! stopped only when it does not answer **and** nothing on its host listens at its info address
//! any more (the kernel's socket table, `/proc/net/tcp` and `tcp6`, read through the transport).
//! When that cannot be read, the node is not taken as stopped.

use super::*;

impl<T: Transport, S: Store> NodeProvider<T, S> {
    /// Ok when `name` is seen stopped; otherwise why not (yet).
    pub(super) async fn stopped(&self, name: &str) -> Result<(), String> {
        if self.answers(name).await {
            return Err(format!("{name} still answers"));
        }
        let address = self
            .nodes
            .get(name)
            .ok_or_else(|| format!("node {name} is not in the policy"))?;
        let target = self.target(name).map_err(|e| e.to_string())?;
        let table = run_ok(
            &self.transport,
            &target,
            // Headers and listening sockets only: a busy host's table would not fit a transport
            // with an output limit (SSM).
            "awk 'FNR==1 || $4==\"0A\"' /proc/net/tcp /proc/net/tcp6 2>/dev/null; true",
            None,
        )
        .await
        .map_err(|e| {
            format!(
                "{name} does not answer, but whether its process is gone cannot be seen on {} ({e}): not taken as stopped",
                address.host
            )
        })?;
        match listening(&String::from_utf8_lossy(&table), address.info) {
            None => Err(format!(
                "{name} does not answer, but {} shows no socket table (/proc/net/tcp): whether its process is gone cannot be seen, so it is not taken as stopped",
                address.host
            )),
            Some(true) => Err(format!(
                "{name} does not answer, yet a process on {} still listens at {} (Aerospike hung, cut off or still shutting down, or another process on that port: `ss -ltnp` there names it): its volumes are not touched until nothing listens there",
                address.host, address.info
            )),
            Some(false) => Ok(()),
        }
    }
}

/// Whether the socket table (`/proc/net/tcp` and `/proc/net/tcp6` concatenated) has a listener
/// at `at`'s port on its address or on every address (`0.0.0.0`, `::`, or `at` mapped into
/// IPv6). None when the text is no socket table.
pub(crate) fn listening(table: &str, at: SocketAddr) -> Option<bool> {
    if !table.contains("local_address") {
        return None;
    }
    let want: [u8; 16] = match at.ip() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    };
    Some(table.lines().any(|line| {
        let mut f = line.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(state)) = (f.next(), f.next(), f.next(), f.next())
        else {
            return false;
        };
        // 0A: TCP_LISTEN.
        if state != "0A" {
            return false;
        }
        let Some((ip, port)) = local.split_once(':') else {
            return false;
        };
        if u16::from_str_radix(port, 16).ok() != Some(at.port()) {
            return false;
        }
        match kernel_address(ip) {
            Some(a) => {
                a == want || a == [0; 16] || a == Ipv4Addr::UNSPECIFIED.to_ipv6_mapped().octets()
            }
            None => false,
        }
    }))
}

/// An address as the kernel prints it: 32-bit words in the machine's byte order (little-endian
/// here), 8 hex digits for IPv4, 32 for IPv6; IPv4 returned mapped into IPv6.
fn kernel_address(hex: &str) -> Option<[u8; 16]> {
    let words: Vec<[u8; 4]> = (0..hex.len() / 8)
        .map(|i| {
            u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16)
                .ok()
                .map(u32::to_le_bytes)
        })
        .collect::<Option<_>>()?;
    match words.as_slice() {
        [v4] => Some(Ipv4Addr::from(*v4).to_ipv6_mapped().octets()),
        [a, b, c, d] => {
            let mut out = [0u8; 16];
            for (k, w) in [a, b, c, d].iter().enumerate() {
                out[k * 4..k * 4 + 4].copy_from_slice(*w);
            }
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux prints them (header, then `sl local rem st …`).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B01007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0C01007F:0BB8 0B01007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
";

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_listener_at_the_nodes_address_or_on_every_address_means_not_stopped() {
        let table = format!("{TCP}{TCP6}");
        // 127.0.1.11:3000 listens (0B01007F is 127.0.1.11 in a little-endian word).
        assert_eq!(listening(&table, at("127.0.1.11:3000")), Some(true));
        // 127.0.1.12:3000 only has an established connection, not a listener.
        assert_eq!(listening(&table, at("127.0.1.12:3000")), Some(false));
        // Port 8080 on `::` listens on every address, IPv4 included.
        assert_eq!(listening(&table, at("10.0.1.11:8080")), Some(true));
        assert_eq!(listening(&table, at("10.0.1.11:3001")), Some(false));
        // No table at all (not Linux, or /proc hidden): unknown, never "stopped".
        assert_eq!(listening("", at("127.0.1.11:3000")), None);
    }
}
