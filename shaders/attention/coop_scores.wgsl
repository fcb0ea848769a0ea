// The scores of one key tile, S = Q·Kᵀ, pasted into both passes of attention/coop.wgsl (inside
// its main, whose query fragments q{i}_{d} and zero fragment it uses): B = Kᵀ is column-major
// in ks; S goes to ss, row-major.
#unroll i FQ
#unroll j FK
var s{{i}}_{{j}} = zero;
#unroll d FD
s{{i}}_{{j}} = coopMultiplyAdd(q{{i}}_{{d}}, coopLoad<coop_mat{{CM}}x{{CM}}<f16, B>>(&ks[{{j}}u * CM * LDD + {{d}}u * CM], LDD), s{{i}}_{{j}});
#endunroll
coopStoreT(s{{i}}_{{j}}, &ss[{{i}}u * CM * LDS + {{j}}u * CM], LDS);
#endunroll
#endunroll
