// Command velocity-local-provisioner is the dynamic volume provisioner of the local
// test cluster (hack/cluster/up.sh). It runs on the cluster's only node, as a host
// process, and gives every claim of a StorageClass whose provisioner is its name
// (velocity.dev/local-path by default) a directory under --root:
//
//   - a pending claim of such a class (once the scheduler has picked a node, for
//     WaitForFirstConsumer classes) gets a hostPath PersistentVolume pre-bound to
//     it, backed by the directory --root/<pv name>, created world-writable so that
//     non-root containers can use it (hostPath volumes ignore fsGroup);
//   - a Released volume it made whose reclaim policy is Delete loses its directory,
//     then the PersistentVolume object is deleted. Retain leaves both alone.
//
// Data therefore survive the deletion of the pod; they go with the claim. The
// loop polls the API server every --interval: a single-node test cluster has few
// claims, and polling keeps the program small and free of cache-coherence bugs.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

const (
	annProvisionedBy   = "pv.kubernetes.io/provisioned-by"
	annStorageProvider = "volume.kubernetes.io/storage-provisioner"
	annSelectedNode    = "volume.kubernetes.io/selected-node"
	labelHostname      = "kubernetes.io/hostname"
)

type provisioner struct {
	client kubernetes.Interface
	name   string
	root   string
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of a user allowed to manage PersistentVolumes")
	name := flag.String("provisioner-name", "velocity.dev/local-path", "provisioner name StorageClasses refer to")
	root := flag.String("root", "", "directory that holds one subdirectory per volume (required)")
	interval := flag.Duration("interval", time.Second, "how often claims and volumes are examined")
	flag.Parse()
	if *root == "" || !filepath.IsAbs(*root) {
		log.Fatal("--root must be an absolute directory")
	}
	if err := os.MkdirAll(*root, 0o755); err != nil {
		log.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("loading kubeconfig: %v", err)
	}
	cfg.UserAgent = "velocity-local-provisioner"
	p := &provisioner{client: kubernetes.NewForConfigOrDie(cfg), name: *name, root: filepath.Clean(*root)}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log.Printf("provisioning %q volumes under %s", p.name, p.root)
	ticker := time.NewTicker(*interval)
	defer ticker.Stop()
	for {
		if err := p.sync(ctx); err != nil && ctx.Err() == nil {
			log.Printf("sync: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// sync makes one pass over claims and volumes.
func (p *provisioner) sync(ctx context.Context) error {
	classes, err := p.client.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	ours := map[string]*storagev1.StorageClass{}
	for i := range classes.Items {
		if classes.Items[i].Provisioner == p.name {
			ours[classes.Items[i].Name] = &classes.Items[i]
		}
	}
	claims, err := p.client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.Spec.StorageClassName == nil || pvc.Spec.VolumeName != "" || pvc.Status.Phase != corev1.ClaimPending {
			continue
		}
		class, ok := ours[*pvc.Spec.StorageClassName]
		if !ok || pvc.DeletionTimestamp != nil {
			continue
		}
		if err := p.provision(ctx, pvc, class); err != nil {
			log.Printf("provisioning %s/%s: %v", pvc.Namespace, pvc.Name, err)
		}
	}
	volumes, err := p.client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for i := range volumes.Items {
		pv := &volumes.Items[i]
		if pv.Annotations[annProvisionedBy] != p.name || pv.Status.Phase != corev1.VolumeReleased ||
			pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
			continue
		}
		if err := p.delete(ctx, pv); err != nil {
			log.Printf("deleting %s: %v", pv.Name, err)
		}
	}
	return nil
}

func (p *provisioner) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim, class *storagev1.StorageClass) error {
	node := pvc.Annotations[annSelectedNode]
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer && node == "" {
		return nil // the scheduler has not placed a consumer yet
	}
	if pvc.Annotations[annStorageProvider] != "" && pvc.Annotations[annStorageProvider] != p.name {
		return nil
	}
	request, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if !ok {
		return fmt.Errorf("claim has no storage request")
	}
	name := "pvc-" + string(pvc.UID)
	dir := filepath.Join(p.root, name)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o777); err != nil { // umask-proof: containers run as any user
		return err
	}
	reclaim := corev1.PersistentVolumeReclaimDelete
	if class.ReclaimPolicy != nil {
		reclaim = *class.ReclaimPolicy
	}
	dirType := corev1.HostPathDirectory
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annProvisionedBy: p.name},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: request},
			AccessModes:                   pvc.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    pvc.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: dir, Type: &dirType},
			},
		},
	}
	if node != "" {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: labelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
			}}}},
		}}
	}
	_, err := p.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		log.Printf("provisioned %s for %s/%s at %s", name, pvc.Namespace, pvc.Name, dir)
	}
	return err
}

func (p *provisioner) delete(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Spec.HostPath != nil {
		dir := filepath.Clean(pv.Spec.HostPath.Path)
		if !strings.HasPrefix(dir, p.root+string(filepath.Separator)) {
			return fmt.Errorf("refusing to remove %s: not under %s", dir, p.root)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	err := p.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil {
		log.Printf("deleted %s", pv.Name)
	}
	return err
}
