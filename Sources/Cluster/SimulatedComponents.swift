import Foundation

/// The objects a fresh K3s server creates, as the simulated cluster applies them.
///
/// Names, labels, requests and ports follow K3s's packaged add-ons (CoreDNS, metrics-server,
/// local-path-provisioner, Traefik installed by the helm controller, ServiceLB's svclb DaemonSet).
enum K3sComponents {
    static func manifests(nodeCount: Int) -> String {
        var text = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: default}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: kube-system}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: kube-public}
            ---
            apiVersion: v1
            kind: Namespace
            metadata: {name: kube-node-lease}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: kubernetes, namespace: default, labels: {component: apiserver, provider: kubernetes}}
            spec:
              type: ClusterIP
              ports: [{name: https, port: 443, protocol: TCP, targetPort: 6443}]
            """
        for account in ["coredns", "metrics-server", "local-path-provisioner-service-account", "helm-traefik"] {
            text += """

                ---
                apiVersion: v1
                kind: ServiceAccount
                metadata: {name: \(account), namespace: kube-system}
                """
        }
        text += """

            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: coredns, namespace: kube-system}
            data:
              Corefile: |
                .:53 {
                    errors
                    health
                    ready
                    kubernetes cluster.local in-addr.arpa ip6.arpa {
                      pods insecure
                      fallthrough in-addr.arpa ip6.arpa
                    }
                    prometheus :9153
                    forward . /etc/resolv.conf
                    cache 30
                    loop
                    reload
                    loadbalance
                }
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: local-path-config, namespace: kube-system}
            data:
              config.json: '{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES","paths":["/var/lib/rancher/k3s/storage"]}]}'
            ---
            apiVersion: storage.k8s.io/v1
            kind: StorageClass
            metadata:
              name: local-path
              annotations: {storageclass.kubernetes.io/is-default-class: "true"}
            provisioner: rancher.io/local-path
            volumeBindingMode: WaitForFirstConsumer
            reclaimPolicy: Delete
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
            spec:
              replicas: 1
              selector: {matchLabels: {k8s-app: kube-dns}}
              template:
                metadata: {labels: {k8s-app: kube-dns}}
                spec:
                  serviceAccountName: coredns
                  containers:
                  - name: coredns
                    image: rancher/mirrored-coredns-coredns:1.12.0
                    args: ["-conf", "/etc/coredns/Corefile"]
                    ports:
                    - {name: dns, containerPort: 53, protocol: UDP}
                    - {name: dns-tcp, containerPort: 53, protocol: TCP}
                    - {name: metrics, containerPort: 9153, protocol: TCP}
                    resources:
                      requests: {cpu: 100m, memory: 70Mi}
                      limits: {memory: 170Mi}
                    volumeMounts: [{name: config-volume, mountPath: /etc/coredns}]
                  volumes:
                  - name: config-volume
                    configMap: {name: coredns, items: [{key: Corefile, path: Corefile}]}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
            spec:
              clusterIP: 10.43.0.10
              selector: {k8s-app: kube-dns}
              ports:
              - {name: dns, port: 53, protocol: UDP}
              - {name: dns-tcp, port: 53, protocol: TCP}
              - {name: metrics, port: 9153, protocol: TCP}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: metrics-server, namespace: kube-system, labels: {k8s-app: metrics-server}}
            spec:
              selector: {matchLabels: {k8s-app: metrics-server}}
              template:
                metadata: {labels: {k8s-app: metrics-server}}
                spec:
                  serviceAccountName: metrics-server
                  containers:
                  - name: metrics-server
                    image: rancher/mirrored-metrics-server:v0.7.2
                    ports: [{name: https, containerPort: 10250, protocol: TCP}]
                    resources:
                      requests: {cpu: 100m, memory: 70Mi}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: metrics-server, namespace: kube-system, labels: {kubernetes.io/name: Metrics-server}}
            spec:
              selector: {k8s-app: metrics-server}
              ports: [{name: https, port: 443, protocol: TCP, targetPort: https}]
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: {name: local-path-provisioner, namespace: kube-system}
            spec:
              selector: {matchLabels: {app: local-path-provisioner}}
              template:
                metadata: {labels: {app: local-path-provisioner}}
                spec:
                  serviceAccountName: local-path-provisioner-service-account
                  containers:
                  - name: local-path-provisioner
                    image: rancher/local-path-provisioner:v0.0.30
                    command: [local-path-provisioner, start, --config, /etc/config/config.json]
                    volumeMounts: [{name: config-volume, mountPath: /etc/config/}]
                  volumes:
                  - name: config-volume
                    configMap: {name: local-path-config}
            ---
            apiVersion: batch/v1
            kind: Job
            metadata: {name: helm-install-traefik-crd, namespace: kube-system}
            spec:
              template:
                metadata: {labels: {helmcharts.helm.cattle.io/chart: traefik-crd}}
                spec:
                  serviceAccountName: helm-traefik
                  restartPolicy: OnFailure
                  containers: [{name: helm, image: "rancher/klipper-helm:v0.9.3-build20241008", args: [install]}]
            ---
            apiVersion: batch/v1
            kind: Job
            metadata: {name: helm-install-traefik, namespace: kube-system}
            spec:
              template:
                metadata: {labels: {helmcharts.helm.cattle.io/chart: traefik}}
                spec:
                  serviceAccountName: helm-traefik
                  restartPolicy: OnFailure
                  containers: [{name: helm, image: "rancher/klipper-helm:v0.9.3-build20241008", args: [install]}]
            ---
            apiVersion: v1
            kind: ServiceAccount
            metadata: {name: traefik, namespace: kube-system}
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: traefik
              namespace: kube-system
              labels: {app.kubernetes.io/instance: traefik-kube-system, app.kubernetes.io/name: traefik}
            spec:
              selector:
                matchLabels: {app.kubernetes.io/instance: traefik-kube-system, app.kubernetes.io/name: traefik}
              template:
                metadata:
                  labels: {app.kubernetes.io/instance: traefik-kube-system, app.kubernetes.io/name: traefik}
                  annotations: {prometheus.io/port: "8082", prometheus.io/scrape: "true", prometheus.io/path: /metrics}
                spec:
                  serviceAccountName: traefik
                  containers:
                  - name: traefik
                    image: rancher/mirrored-library-traefik:3.3.2
                    ports:
                    - {name: metrics, containerPort: 9100, protocol: TCP}
                    - {name: traefik, containerPort: 9000, protocol: TCP}
                    - {name: web, containerPort: 8000, protocol: TCP}
                    - {name: websecure, containerPort: 8443, protocol: TCP}
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: traefik, namespace: kube-system, labels: {app.kubernetes.io/name: traefik}}
            spec:
              type: LoadBalancer
              selector: {app.kubernetes.io/instance: traefik-kube-system, app.kubernetes.io/name: traefik}
              ports:
              - {name: web, port: 80, protocol: TCP, targetPort: web}
              - {name: websecure, port: 443, protocol: TCP, targetPort: websecure}
            ---
            apiVersion: apps/v1
            kind: DaemonSet
            metadata: {name: svclb-traefik-\(StableHash.hex(of: "svclb-traefik/\(nodeCount)", length: 8)), namespace: kube-system}
            spec:
              selector: {matchLabels: {app: svclb-traefik, svccontroller.k3s.cattle.io/svcname: traefik}}
              template:
                metadata: {labels: {app: svclb-traefik, svccontroller.k3s.cattle.io/svcname: traefik}}
                spec:
                  containers:
                  - {name: lb-tcp-80, image: "rancher/klipper-lb:v0.4.9", ports: [{name: lb-tcp-80, containerPort: 80}]}
                  - {name: lb-tcp-443, image: "rancher/klipper-lb:v0.4.9", ports: [{name: lb-tcp-443, containerPort: 443}]}

            """
        return text
    }
}

/// The objects of an Argo CD install (`manifests/install.yaml`), as the simulated cluster applies them, with
/// `argocd-server` exposed as NodePort 30080 (http) and 30443 (https) the way shoal patches it.
enum ArgoCDComponents {
    static func manifests(version: String, adminPassword: String) -> String {
        let image = "quay.io/argoproj/argocd:\(version)"
        var text = """
            apiVersion: v1
            kind: Namespace
            metadata: {name: argocd}
            """
        for (plural, kind) in [
            ("applications", "Application"), ("applicationsets", "ApplicationSet"), ("appprojects", "AppProject"),
        ] {
            text += """

                ---
                apiVersion: apiextensions.k8s.io/v1
                kind: CustomResourceDefinition
                metadata: {name: \(plural).argoproj.io}
                spec:
                  group: argoproj.io
                  scope: Namespaced
                  names: {kind: \(kind), plural: \(plural)}
                  versions: [{name: v1alpha1, served: true, storage: true}]
                """
        }
        let components: [(name: String, kind: String, port: Int, command: String)] = [
            ("argocd-application-controller", "StatefulSet", 8082, "argocd-application-controller"),
            ("argocd-applicationset-controller", "Deployment", 7000, "argocd-applicationset-controller"),
            ("argocd-dex-server", "Deployment", 5556, "/shared/argocd-dex"),
            ("argocd-notifications-controller", "Deployment", 9001, "argocd-notifications"),
            ("argocd-redis", "Deployment", 6379, "redis-server"),
            ("argocd-repo-server", "Deployment", 8081, "argocd-repo-server"),
            ("argocd-server", "Deployment", 8080, "argocd-server"),
        ]
        for component in components {
            let componentImage =
                switch component.name {
                case "argocd-redis": "public.ecr.aws/docker/library/redis:7-alpine"
                case "argocd-dex-server": "ghcr.io/dexidp/dex:latest"
                default: image
                }
            text += """

                ---
                apiVersion: v1
                kind: ServiceAccount
                metadata: {name: \(component.name), namespace: argocd}
                ---
                apiVersion: apps/v1
                kind: \(component.kind)
                metadata:
                  name: \(component.name)
                  namespace: argocd
                  labels: {app.kubernetes.io/name: \(component.name), app.kubernetes.io/part-of: argocd}
                spec:
                  replicas: 1
                  selector: {matchLabels: {app.kubernetes.io/name: \(component.name)}}
                  template:
                    metadata: {labels: {app.kubernetes.io/name: \(component.name)}}
                    spec:
                      serviceAccountName: \(component.name)
                      containers:
                      - name: \(component.name.replacingOccurrences(of: "argocd-", with: ""))
                        image: "\(componentImage)"
                        args: ["\(component.command)"]
                        ports: [{containerPort: \(component.port)}]
                """
            guard component.name != "argocd-server" else { continue }
            text += """

                ---
                apiVersion: v1
                kind: Service
                metadata: {name: \(component.name == "argocd-application-controller" ? "argocd-metrics" : component.name), namespace: argocd}
                spec:
                  selector: {app.kubernetes.io/name: \(component.name)}
                  ports: [{port: \(component.port), targetPort: \(component.port)}]
                """
        }
        let encodedPassword = Data(adminPassword.utf8).base64EncodedString()
        text += """

            ---
            apiVersion: v1
            kind: Service
            metadata: {name: argocd-server, namespace: argocd, labels: {app.kubernetes.io/name: argocd-server}}
            spec:
              type: NodePort
              selector: {app.kubernetes.io/name: argocd-server}
              ports:
              - {name: http, port: 80, protocol: TCP, targetPort: 8080, nodePort: 30080}
              - {name: https, port: 443, protocol: TCP, targetPort: 8080, nodePort: 30443}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: argocd-cm, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: argocd-rbac-cm, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: argocd-cmd-params-cm, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: argocd-secret, namespace: argocd, labels: {app.kubernetes.io/part-of: argocd}}
            type: Opaque
            ---
            apiVersion: v1
            kind: Secret
            metadata: {name: argocd-initial-admin-secret, namespace: argocd}
            type: Opaque
            data: {password: \(encodedPassword)}
            ---
            apiVersion: argoproj.io/v1alpha1
            kind: AppProject
            metadata: {name: default, namespace: argocd}
            spec:
              sourceRepos: ["*"]
              destinations: [{namespace: "*", server: "*"}]
              clusterResourceWhitelist: [{group: "*", kind: "*"}]

            """
        return text
    }
}
