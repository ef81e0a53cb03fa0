# target = "local": one K3s server on this host, installed by the official script pinned to
# var.k3s_version, or from var.airgap_dir without any download. Values reach the shell only
# through each provisioner's environment and are expanded there as quoted "$VARIABLES", never
# spliced into the command text.

# Uninstalls K3s on destroy. A resource of its own, with no create-time provisioner, so it is
# never tainted: Terraform skips the destroy provisioners of a tainted resource, and an install
# that failed half way must be removed too.
resource "terraform_data" "local_uninstall" {
  for_each = var.target == "local" ? { (local.first_name) = local.nodes[0] } : {}

  input = {
    name = each.key
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    command     = <<-EOT
      set -eu
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
      if [ -x /usr/local/bin/k3s-uninstall.sh ]; then $SUDO /usr/local/bin/k3s-uninstall.sh; fi
    EOT
  }
}

resource "terraform_data" "local_server" {
  for_each   = var.target == "local" ? { (local.first_name) = local.nodes[0] } : {}
  depends_on = [terraform_data.local_uninstall]

  input = {
    name = each.key
  }

  # The token goes from the environment into a root-only file that K3s reads through
  # K3S_TOKEN_FILE. Terraform suppresses this provisioner's output because of the token.
  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      K3S_TOKEN  = var.k3s_token
      TOKEN_FILE = local.token_file
    }
    command = <<-EOT
      set -eu
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
      $SUDO mkdir -p "$(dirname "$TOKEN_FILE")"
      printf '%s' "$K3S_TOKEN" | $SUDO sh -c 'umask 077 && cat > "$1"' token "$TOKEN_FILE"
    EOT
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      AIRGAP_DIR          = var.airgap_dir == null ? "" : var.airgap_dir
      INSTALL_K3S_VERSION = var.k3s_version
      K3S_TOKEN_FILE      = local.token_file
      NODE_NAME           = self.input.name
      TLS_SAN             = var.advertise_address == null ? "" : var.advertise_address
    }
    command = <<-EOT
      set -eu
      SUDO=""
      [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
      ${local.firewall_script}
      open_k3s_ports server false
      set -- server --node-name "$NODE_NAME"
      if [ -n "$TLS_SAN" ]; then set -- "$@" --tls-san "$TLS_SAN"; fi
      if [ -n "$AIRGAP_DIR" ]; then
        $SUDO install -m 0755 "$AIRGAP_DIR/k3s" /usr/local/bin/k3s
        $SUDO mkdir -p /var/lib/rancher/k3s/agent/images
        for archive in "$AIRGAP_DIR"/k3s-airgap-images-*; do
          if [ -f "$archive" ]; then $SUDO cp "$archive" /var/lib/rancher/k3s/agent/images/; fi
        done
        export INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_SKIP_SELINUX_RPM=true
        sh "$AIRGAP_DIR/install.sh" "$@"
      else
        script=$(mktemp)
        trap 'rm -f "$script"' EXIT
        curl -sfL --retry 3 -o "$script" https://get.k3s.io
        sh "$script" "$@"
      fi
    EOT
  }

}
