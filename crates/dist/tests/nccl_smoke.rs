//! The NCCL backend in a world of one on GPU 0 (`scripts/gpu_check.sh` runs it from a bundle
//! built with `--features cuda`; needs a GPU and libnccl): every collective through the GPU
//! gives the values one rank must get, a device buffer sums in place, and an id made by
//! NCCL survives the hex text `ONESHOT_NCCL_ID` carries.
#![cfg(feature = "cuda")]

use cudarc::driver::CudaContext;
use oneshot_dist::nccl::{id_from_hex, id_to_hex, Id, Nccl};
use oneshot_dist::{Collective, World};

#[test]
fn world_of_one_on_gpu0() {
    let c = Nccl::from_env(World::single(), 0).expect("NCCL on cuda:0");
    assert!(c.nccl().is_some());
    let mut bytes = b"root".to_vec();
    c.broadcast(&mut bytes, 0).unwrap();
    assert_eq!(bytes, b"root");
    let mut v = [1.5f32, -2.0, 3.25];
    c.all_reduce_f32(&mut v).unwrap();
    assert_eq!(v, [1.5, -2.0, 3.25]);
    let mut d = [0.1f64, 7.0];
    c.all_reduce_f64(&mut d).unwrap();
    assert_eq!(d, [0.1, 7.0]);
    assert_eq!(c.all_gather(b"abc").unwrap(), vec![b"abc".to_vec()]);
    assert_eq!(c.all_gather(b"").unwrap(), vec![Vec::<u8>::new()]);
    c.barrier().unwrap();

    // A device buffer on another stream of the same device, summed in place.
    let stream = CudaContext::new(0).unwrap().new_stream().unwrap();
    let mut dev = stream.clone_htod(&[4.0f32, 5.0][..]).unwrap();
    c.all_reduce_device(&mut dev).unwrap();
    assert_eq!(stream.clone_dtoh(&dev).unwrap(), vec![4.0, 5.0]);
}

#[test]
fn ids_round_trip_through_hex() {
    let id = Id::new().expect("an NCCL id");
    assert_ne!(id.0, [0u8; 128], "NCCL filled the id");
    assert!(id_from_hex(&id_to_hex(&id)).unwrap() == id);
    assert!(id_from_hex("00").is_err());
}
