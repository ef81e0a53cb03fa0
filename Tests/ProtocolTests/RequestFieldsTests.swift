import Foundation
import Testing

@testable import Protocol

@Suite struct RequestFieldsTests {
    @Test func aRequestFromAnOlderClientDecodesWithTheNewFieldsAtTheirDefaults() throws {
        let old = #"{"platform":"k3s","environment":"development","nodes":2,"realDeployment":true}"#
        let request = try JSONDecoder().decode(WorkflowRequest.self, from: Data(old.utf8))
        #expect(request.nodes == 2 && request.realDeployment)
        #expect(request.argocdManifest == nil && request.gitopsRemote == nil && request.waitTimeoutSeconds == 0)
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
}
