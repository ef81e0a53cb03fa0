import Foundation
import Testing

@testable import Protocol

@Suite struct RequestFieldsTests {
    @Test func aRequestFromAnOlderClientDecodesWithTheNewFieldsAtTheirDefaults() throws {
        let old = #"{"platform":"k3s","environment":"development","nodes":2,"realDeployment":true}"#
        let request = try JSONDecoder().decode(WorkflowRequest.self, from: Data(old.utf8))
        #expect(request.nodes == 2 && request.realDeployment)
        #expect(request.argocdManifest == nil && request.gitopsRemote == nil && request.waitTimeoutSeconds == 0)
        #expect(request.advertiseAddress == nil && request.apiAddress == nil)
        #expect(request.nodeIPs.isEmpty && request.flannelInterfaces.isEmpty)
        #expect(request.problems().isEmpty)
    }

    @Test func theRealModeFieldsRoundTripAndAreChecked() throws {
        var request = WorkflowRequest()
        request.argocdManifest = "/srv/argocd/install.yaml"
        request.gitopsRemote = "git@example.com:lab/gitops.git"
        request.waitTimeoutSeconds = 600
        let decoded = try JSONDecoder().decode(WorkflowRequest.self, from: JSONEncoder().encode(request))
        #expect(decoded == request)
        #expect(decoded.problems().isEmpty)

        request.argocd = false
        #expect(request.problems().contains { $0.contains("--argocd-manifest needs Argo CD") })
        request.argocd = true
        request.gitopsRemote = "--upload-pack=evil"
        #expect(request.problems().contains { $0.contains("--gitops-remote") })
        request.gitopsRemote = nil
        request.waitTimeoutSeconds = -1
        #expect(request.problems().contains { $0.contains("--wait-timeout") })
        let wrongType = #"{"waitTimeoutSeconds":"soon"}"#
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(WorkflowRequest.self, from: Data(wrongType.utf8))
        }
    }

    @Test func theAddressFieldsRoundTripAndAreChecked() throws {
        var request = WorkflowRequest()
        request.target = .ssh
        request.nodes = 2
        request.hosts = ["ubuntu@node1.lan", "ops@[2001:db8::2]:2222"]
        request.advertiseAddress = "203.0.113.4"
        request.apiAddress = "10.0.0.1"
        request.nodeIPs = ["node1.lan": "10.0.0.1", "2001:db8::2": "fd00::2"]
        request.flannelInterfaces = ["node1.lan": "eth1"]
        let decoded = try JSONDecoder().decode(WorkflowRequest.self, from: JSONEncoder().encode(request))
        #expect(decoded == request)
        #expect(decoded.problems().isEmpty, "\(decoded.problems())")

        var hostile = request
        hostile.advertiseAddress = "a;id"
        hostile.apiAddress = "0.0.0.0"
        hostile.nodeIPs = ["node1.lan": "10.0.0.1\nx", "other": "10.0.0.9"]
        hostile.flannelInterfaces = ["node1.lan": "eth1;reboot"]
        let problems = hostile.problems()
        #expect(problems.count == 5, "\(problems)")
        #expect(problems.contains { $0.hasPrefix("invalid --advertise-address 'a;id'") })
        #expect(problems.contains { $0.hasPrefix("invalid --api-address '0.0.0.0'") })
        #expect(problems.contains { $0.hasPrefix("invalid --node-ip node1.lan=10.0.0.1?x") })
        #expect(problems.contains { $0.contains("'other' is not the HOST of any --hosts entry") })
        #expect(problems.contains { $0.hasPrefix("invalid --flannel-iface node1.lan=eth1;reboot") })
        #expect(problems.allSatisfy { !$0.contains("\n") })

        var docker = WorkflowRequest()
        docker.target = .docker
        docker.apiAddress = "10.0.0.1"
        docker.nodeIPs = ["h": "10.0.0.1"]
        docker.advertiseAddress = "infra-1.lab"
        let misplaced = docker.problems()
        #expect(misplaced.contains { $0 == "--api-address is only used with --target ssh (the target is docker)" })
        #expect(misplaced.contains { $0.hasPrefix("--node-ip is only used with --target ssh") })
        #expect(!misplaced.contains { $0.contains("--advertise-address") })
    }

    @Test func theCoordinatorMetricsEndpointIsAHostAndAPort() throws {
        var request = WorkflowRequest()
        for good in ["coordinator.lab:9464", "10.0.0.5:9464", "[2001:db8::5]:9464"] {
            request.coordinatorMetrics = good
            #expect(request.problems().isEmpty, "\(good): \(request.problems())")
            let decoded = try JSONDecoder().decode(WorkflowRequest.self, from: JSONEncoder().encode(request))
            #expect(decoded.coordinatorMetrics == good)
        }
        for bad in ["coordinator.lab", "coordinator.lab:0", "coordinator.lab:70000", "0.0.0.0:9464", "a b:1",
            "host:9464\n- job_name: x", "2001:db8::5:9464", "-x:1", ":9464"]
        {
            request.coordinatorMetrics = bad
            #expect(
                request.problems().contains { $0.hasPrefix("invalid --coordinator-metrics") }, "\(bad) is refused")
        }
    }
}
