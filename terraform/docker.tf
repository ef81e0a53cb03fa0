# target = "docker": K3s in containers of the rancher/k3s image of var.k3s_version, one server
# (or server_count servers on embedded etcd) and agents, on a docker network of their own. The
# first server publishes the API (6443) and the NodePorts on the advertised address only:
# 127.0.0.1 unless var.advertise_address names an address of this host that other hosts reach.
#
# Values reach the shell only through each provisioner's environment and are expanded there
# as quoted "$VARIABLES", never spliced into the command text. The join token is handed to
# `docker run --env K3S_TOKEN` by name, so it never appears on a command line.

locals {
  docker_nodes   = var.target == "docker" ? { for n in local.nodes : n.name => n } : {}
  docker_first   = { for name, n in local.docker_nodes : name => n if name == local.first_name }
  docker_joining = { for name, n in local.docker_nodes : name => n if name != local.first_name }

  image      = "rancher/k3s:${replace(var.k3s_version, "+", "-")}"
  network    = "${var.cluster_name}-net"
  server_url = "https://${local.first_name}:6443"

  # Starts one node container. A leftover container of the same name is replaced only when
  # it carries this cluster's label; anything else is refused.
  run_script = <<-EOT
    set -eu
    if docker container inspect "$NAME" >/dev/null 2>&1; then
      owner=$(docker container inspect --format '{{ index .Config.Labels "io.shoal.cluster" }}' "$NAME")
      if [ "$owner" != "$CLUSTER" ]; then
        echo "shoal: a container named $NAME exists and is not part of cluster $CLUSTER" >&2
        exit 1
      fi
      docker rm --force --volumes "$NAME" >/dev/null
    fi
    set -- --detach --name "$NAME" --hostname "$NAME" --network "$NETWORK" \
      --label "io.shoal.cluster=$CLUSTER" --privileged --restart unless-stopped \
      --tmpfs /run --tmpfs /var/run --add-host host.k3d.internal:host-gateway --env K3S_TOKEN
    if [ -n "$PUBLISH_PORTS" ]; then
      for port in $PUBLISH_PORTS; do
        set -- "$@" --publish "$PUBLISH_ADDRESS:$port:$port"
      done
    fi
    set -- "$@" "$IMAGE" "$ROLE" --node-name "$NAME"
    if [ "$ROLE" = server ]; then
      set -- "$@" --tls-san 127.0.0.1
      if [ -n "$TLS_SAN" ]; then set -- "$@" --tls-san "$TLS_SAN"; fi
    fi
    if [ -n "$JOIN_URL" ]; then set -- "$@" --server "$JOIN_URL"; fi
    if [ "$CLUSTER_INIT" = true ]; then set -- "$@" --cluster-init; fi
    docker run "$@" >/dev/null
  EOT
}

resource "terraform_data" "docker_network" {
  count = var.target == "docker" ? 1 : 0

  input = {
    network = local.network
    cluster = var.cluster_name
  }

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      NETWORK = self.input.network
      CLUSTER = self.input.cluster
    }
    command = <<-EOT
      set -eu
      if ! docker network inspect "$NETWORK" >/dev/null 2>&1; then
        docker network create --driver bridge --label "io.shoal.cluster=$CLUSTER" "$NETWORK" >/dev/null
      fi
    EOT
  }

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    environment = {
      NETWORK = self.input.network
    }
    command = <<-EOT
      set -eu
      if docker network inspect "$NETWORK" >/dev/null 2>&1; then docker network rm "$NETWORK" >/dev/null; fi
    EOT
  }
}

# Removes each node's container on destroy. A resource of its own, with no create-time
# provisioner, so it is never tainted: Terraform skips the destroy provisioners of a tainted
# resource, and a container that started but failed its readiness wait must go too.
resource "terraform_data" "docker_uninstall" {
  for_each   = local.docker_nodes
  depends_on = [terraform_data.docker_network]

  input = {
    name = each.key
  }
  triggers_replace = [each.key, local.network]

  provisioner "local-exec" {
    when        = destroy
    interpreter = ["/bin/sh", "-c"]
    environment = {
      NAME = self.input.name
    }
    command = <<-EOT
      set -eu
      if docker container inspect "$NAME" >/dev/null 2>&1; then docker rm --force --volumes "$NAME" >/dev/null; fi
    EOT
  }
}

resource "terraform_data" "docker_first_server" {
  for_each   = local.docker_first
  depends_on = [terraform_data.docker_uninstall]

  input = {
    name    = each.key
    image   = local.image
    network = local.network
  }
  triggers_replace = [each.key, local.network]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      K3S_TOKEN       = var.k3s_token
      NAME            = self.input.name
      IMAGE           = self.input.image
      NETWORK         = self.input.network
      CLUSTER         = var.cluster_name
      ROLE            = "server"
      JOIN_URL        = ""
      CLUSTER_INIT    = tostring(var.server_count > 1)
      PUBLISH_ADDRESS = local.api_host
      PUBLISH_PORTS   = join(" ", concat([6443], var.node_ports))
      TLS_SAN         = var.advertise_address == null ? "" : var.advertise_address
    }
    command = local.run_script
  }

  # Waits until the API server answers, so that joining nodes find it.
  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      NAME = self.input.name
    }
    command = <<-EOT
      set -eu
      i=0
      until docker exec "$NAME" kubectl get --raw /readyz >/dev/null 2>&1; do
        i=$((i + 1))
        if [ "$i" -ge 180 ]; then
          echo "shoal: the K3s server in container $NAME was not ready after 180 s" >&2
          docker logs --tail 20 "$NAME" >&2 || true
          exit 1
        fi
        sleep 1
      done
    EOT
  }

}

resource "terraform_data" "docker_node" {
  for_each   = local.docker_joining
  depends_on = [terraform_data.docker_first_server, terraform_data.docker_uninstall]

  input = {
    name    = each.key
    image   = local.image
    network = local.network
  }
  triggers_replace = [each.key, local.network]

  provisioner "local-exec" {
    interpreter = ["/bin/sh", "-c"]
    environment = {
      K3S_TOKEN       = var.k3s_token
      NAME            = self.input.name
      IMAGE           = self.input.image
      NETWORK         = self.input.network
      CLUSTER         = var.cluster_name
      ROLE            = each.value.role
      JOIN_URL        = local.server_url
      CLUSTER_INIT    = "false"
      PUBLISH_ADDRESS = ""
      PUBLISH_PORTS   = ""
      TLS_SAN         = var.advertise_address == null ? "" : var.advertise_address
    }
    command = local.run_script
  }

}
