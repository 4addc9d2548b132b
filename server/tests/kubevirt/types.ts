// The types each exported manifest is checked against (kubevirt_cli.rs),
// by kind. KubeVirt's, CDI's and Kubernetes' come from the npm package
// @kubevirt-ui-ext/kubevirt-api (package-lock.json pins the version):
// TypeScript models its authors generate from the OpenAPI documents that
// KubeVirt, CDI and Kubernetes publish. The TypeScript compiler checks each
// manifest as an object literal: an unknown field (at any depth), a missing
// required one or a value of the wrong type is an error.
//
// No package carries Multus's NetworkAttachmentDefinition, so its type is
// written here from the CRD that Multus publishes (group k8s.cni.cncf.io,
// version v1: `spec.config`, a string holding the CNI configuration, JSON).
import type { V1VirtualMachine } from "@kubevirt-ui-ext/kubevirt-api/kubevirt";
import type { V1beta1DataVolume } from "@kubevirt-ui-ext/kubevirt-api/containerized-data-importer";
import type {
  IoK8sApiCoreV1Namespace,
  IoK8sApiCoreV1Secret,
  IoK8sApiNetworkingV1NetworkPolicy,
  IoK8sApiRbacV1ClusterRole,
  IoK8sApiRbacV1RoleBinding,
  IoK8sApimachineryPkgApisMetaV1ObjectMeta,
} from "@kubevirt-ui-ext/kubevirt-api/kubernetes";

type Typed<T, A extends string, K extends string> = T & { apiVersion: A; kind: K };

export interface NetworkAttachmentDefinition {
  apiVersion: "k8s.cni.cncf.io/v1";
  kind: "NetworkAttachmentDefinition";
  metadata: IoK8sApimachineryPkgApisMetaV1ObjectMeta;
  spec: { config: string };
}

export interface Kinds {
  Namespace: Typed<IoK8sApiCoreV1Namespace, "v1", "Namespace">;
  Secret: Typed<IoK8sApiCoreV1Secret, "v1", "Secret">;
  ClusterRole: Typed<IoK8sApiRbacV1ClusterRole, "rbac.authorization.k8s.io/v1", "ClusterRole">;
  RoleBinding: Typed<IoK8sApiRbacV1RoleBinding, "rbac.authorization.k8s.io/v1", "RoleBinding">;
  NetworkPolicy: Typed<IoK8sApiNetworkingV1NetworkPolicy, "networking.k8s.io/v1", "NetworkPolicy">;
  DataVolume: Typed<V1beta1DataVolume, "cdi.kubevirt.io/v1beta1", "DataVolume">;
  VirtualMachine: Typed<V1VirtualMachine, "kubevirt.io/v1", "VirtualMachine">;
  NetworkAttachmentDefinition: NetworkAttachmentDefinition;
}
