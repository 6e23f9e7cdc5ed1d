// The released files `pull` fetches, where they live, and what is known about them.
// ref: LLaMA-Adapter imagebind_LLM (demo.py, gradio_app.py, tools/get_chinese_llama.py, README) and the
// model pages: the stable 7B.pth was trained on Open-Chinese-LLaMA-7B = LLaMA-7B + the delta below.
import type { HubFile } from './hub';

export interface ReleasedFile extends HubFile {
  /**
   * Size and sha256 known from the release: checked against what huggingface.co lists, so a file
   * changed on a branch is noticed. A mirror (HF_ENDPOINT) is checked against its own listing.
   */
  known?: { bytes: number; sha256: string };
}

export const RELEASED = {
  /** ImageBind-huge + the Point-Bind trunk; upstream pins this revision. */
  encoder: { repo: 'ZiyuG/ImageBind_w3D', revision: 'e9206a10f118b0790c730264e7b3aa5c324c35cb', path: 'imagebind_w3D.pth' },
  /** The stable adapter (RMSNorm bridge), trained on Open-Chinese-LLaMA-7B. */
  adapter: { repo: 'Cxxs/ImageBind-LLM', revision: 'main', path: '7B.pth' },
  /** The older beta adapter (LayerNorm bridge), trained on plain LLaMA-7B. */
  adapterBeta: { repo: 'Cxxs/ImageBind-LLM', revision: 'main', path: '7B-beta.pth' },
  /** The kNN cache for cache-enhanced inference (a faiss IndexFlatIP). */
  knn: { repo: 'csuhan/knn', revision: 'main', path: 'knn.index' },
  /** Open-Chinese-LLaMA-7B minus LLaMA-7B, in Meta's layout (float16). */
  delta: {
    repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/consolidated.00.pth',
    known: { bytes: 13_476_940_539, sha256: '991519bdf00b79012297fce6d344a926aa6caddb9601acd4dbd8e912253741dd' },
  },
  /** The merged model's hyperparameters (norm_eps 1e-05). */
  deltaParams: { repo: 'Cxxs/Open-Chinese-LLaMA', revision: 'main', path: '7B_chinese_delta/params.json' },
} satisfies Record<string, ReleasedFile>;
