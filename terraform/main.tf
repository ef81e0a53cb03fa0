# What every target shares: node names and roles, the address other hosts reach the cluster at,
# the firewall rules for K3s, and the kubeconfig that apply leaves for the operator.

locals {
  nodes = [
    for i in range(var.node_count) : {
      name = format("%s-%s-%d", var.cluster_name, i < var.server_count ? "server" : "agent", i)
      role = i < var.server_count ? "server" : "agent"
    }
  ]
  node_names = [for n in local.nodes : n.name]
  first_name = local.node_names[0]
  token_file = "/etc/rancher/k3s/shoal-token"

  # The host other machines use for the API and the NodePorts. An IPv6 literal needs brackets
  # inside a URL.
  advertised = coalesce(var.advertise_address, var.target == "ssh" ? try(var.hosts[0].host, "") : "127.0.0.1")
  api_host   = strcontains(local.advertised, ":") ? "[${local.advertised}]" : local.advertised

  api_endpoint = "https://${local.api_host}:6443"

  # Defines open_k3s_ports ROLE ETCD, which opens the ports K3s needs when ufw or firewalld is
  # active (a host with neither is left alone): the API (servers), the kubelet, flannel's VXLAN,
  # embedded etcd (servers of a highly available cluster), the NodePorts, and the pod and
  # service networks. Callers define SUDO first.
  firewall_script = <<-EOT
    open_k3s_ports() {
      tcp="10250 ${join(" ", var.node_ports)}"
      if [ "$1" = server ]; then tcp="6443 $tcp"; fi
      if [ "$1" = server ] && [ "$2" = true ]; then tcp="$tcp 2379:2380"; fi
      if command -v ufw >/dev/null 2>&1 && $SUDO ufw status 2>/dev/null | grep -q '^Status: active'; then
        for port in $tcp; do $SUDO ufw allow "$port/tcp" >/dev/null; done
        $SUDO ufw allow 8472/udp >/dev/null
        $SUDO ufw allow from 10.42.0.0/16 to any >/dev/null
        $SUDO ufw allow from 10.43.0.0/16 to any >/dev/null
        echo "shoal: opened the K3s ports in ufw"
      fi
      if command -v firewall-cmd >/dev/null 2>&1 && $SUDO firewall-cmd --state >/dev/null 2>&1; then
        for port in $tcp; do $SUDO firewall-cmd --permanent --add-port="$(echo "$port" | tr : -)/tcp" >/dev/null; done
        $SUDO firewall-cmd --permanent --add-port=8472/udp >/dev/null
        $SUDO firewall-cmd --permanent --zone=trusted --add-source=10.42.0.0/16 >/dev/null
        $SUDO firewall-cmd --permanent --zone=trusted --add-source=10.43.0.0/16 >/dev/null
        $SUDO firewall-cmd --reload >/dev/null
        echo "shoal: opened the K3s ports in firewalld"
      fi
    }
  EOT
}

# Copies the first server's kubeconfig for the operator with mode 0600 (umask 077, then
# rename). Its server field is rewritten to the advertised address when that is not the
# 127.0.0.1 K3s writes; the rewrite is a structured edit by `kubectl config set-cluster`, which
# changes only clusters[default].cluster.server.
resource "terraform_data" "kubeconfig" {
  depends_on = [terraform_data.local_server, terraform_data.ssh_first_server, terraform_data.docker_first_server]

  input = {
    path = var.kubeconfig_path
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      KUBECONFIG_PATH = self.input.path
      TARGET          = var.target
      SERVER_NAME     = local.first_name
      SERVER_URL      = var.target == "ssh" || var.advertise_address != null ? local.api_endpoint : ""
      SSH_USER        = try(var.hosts[0].user, "")
      SSH_HOST        = try(var.hosts[0].host, "")
      SSH_PORT        = tostring(try(var.hosts[0].port, 22))
      SSH_KEY         = var.ssh_key_path == null ? "" : var.ssh_key_path
      KNOWN_HOSTS     = var.known_hosts_path == null ? "" : var.known_hosts_path
    }
    command = <<-EOT
      set -eu
      umask 077
      mkdir -p "$(dirname "$KUBECONFIG_PATH")"
      tmp="$KUBECONFIG_PATH.tmp"
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
      case "$TARGET" in
      local)
        $SUDO cat /etc/rancher/k3s/k3s.yaml > "$tmp" ;;
      docker)
        docker exec "$SERVER_NAME" cat /etc/rancher/k3s/k3s.yaml > "$tmp" ;;
      ssh)
        set -- -o BatchMode=yes -p "$SSH_PORT"
        if [ -n "$KNOWN_HOSTS" ]; then
          set -- "$@" -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$KNOWN_HOSTS"
        else
          set -- "$@" -o StrictHostKeyChecking=accept-new
        fi
        if [ -n "$SSH_KEY" ]; then set -- "$@" -i "$SSH_KEY"; fi
        remote='sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo -n"; $sudo cat /etc/rancher/k3s/k3s.yaml'
        ssh "$@" "$SSH_USER@$SSH_HOST" "$remote" > "$tmp" ;;
      esac
      if [ -n "$SERVER_URL" ]; then
        if ! command -v kubectl >/dev/null; then
          echo "shoal: kubectl is needed to rewrite the kubeconfig's server field" >&2
          rm -f "$tmp"
          exit 1
        fi
        kubectl config set-cluster default --server="$SERVER_URL" --kubeconfig="$tmp" >/dev/null
      fi
      chmod 600 "$tmp"
      mv -f "$tmp" "$KUBECONFIG_PATH"
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    environment = {
      KUBECONFIG_PATH = self.input.path
    }
    command = "rm -f \"$KUBECONFIG_PATH\""
  }
}
